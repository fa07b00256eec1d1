"""Regenerates the sample files: ``python sample_data/make_samples.py`` (deterministic)."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
MANGO = "66c4964c11e7fef26751f3a7"
MANGO2 = "66c4964c11e7fef26751f3a8"
CDN = "https://cdn.tagmango.com/uploads/sample"
TOPICS = ["Photography Basics", "Watercolour for Beginners", "Python from Zero", "Personal Finance 101",
          "Yoga at Home", "Public Speaking", "Guitar Chords", "Home Baking", "Excel for Analysts",
          "Mindful Mornings", "Digital Marketing", "Spoken Hindi", "Video Editing", "Chess Openings",
          "Stock Market Basics", "Creative Writing", "UI Design Essentials", "Fitness After 40",
          "Indian Classical Vocals", "Startup Fundraising"]


def courses() -> list[dict]:
    rows = []
    for n, topic in enumerate(TOPICS, start=1):
        rows.append({
            "external_id": f"CRS-{n:03d}", "title": topic,
            "description": f"<p>{topic}: a practical course in short lessons.</p>",
            "mangoes": MANGO if n % 3 else f"{MANGO}, {MANGO2}",
            "cover_image": f"{CDN}/covers/crs-{n:03d}.jpg",
            "validity_in_days": 365 if n % 4 else "", "enable_drm": "no", "disable_qna": "yes" if n % 5 == 0 else "",
            "disable_comments": "",
        })
    return rows


def chapters() -> list[dict]:
    rows = []
    for n in range(1, 15):
        ref = f"CRS-{n:03d}"
        rows.append({"course_ref": ref, "chapter_slot": "first", "chapter_id": "", "title": "Welcome",
                     "description": "What this course covers", "content": f"{CDN}/video/{ref}-intro.mp4",
                     "content_type": "video", "is_free": "yes", "additional_contents": ""})
        rows.append({"course_ref": ref, "chapter_slot": "second", "chapter_id": "", "title": "Lesson 1",
                     "description": "", "content": f"{CDN}/pdf/{ref}-notes.pdf", "content_type": "pdf",
                     "is_free": "no", "additional_contents": f"{CDN}/pdf/{ref}-worksheet.pdf"})
    # Planted for the demo: TagMango rejects these (see README, "fixing the planted rows").
    rows.append({"course_ref": "CRS-015", "chapter_slot": "first", "chapter_id": "", "title": "Welcome",
                 "description": "", "content": "https://example.com/videos/crs-015-intro.mp4",
                 "content_type": "video", "is_free": "yes", "additional_contents": ""})
    rows.append({"course_ref": "", "chapter_slot": "", "chapter_id": "5f0c1e2d3b4a596877665544",
                 "title": "Bonus lesson", "description": "", "content": "", "content_type": "", "is_free": "",
                 "additional_contents": ""})
    return rows


def broken_courses() -> list[dict]:
    good = courses()[:3]
    return good + [
        {**good[0], "external_id": "CRS-101", "title": ""},                                  # title missing
        {**good[0], "external_id": "CRS-102", "title": "Bad mango", "mangoes": "12345"},      # not a mango id
        {**good[0], "external_id": "CRS-103", "title": "Bad cover", "cover_image": "cover.jpg"},
        {**good[0], "external_id": "CRS-104", "title": "Bad validity", "validity_in_days": "0"},
        {**good[0], "external_id": "CRS-105", "title": "Bad flag", "enable_drm": "maybe"},
        {**good[1], "title": "Same key, other title"},                                       # duplicate key CRS-002
        dict(good[2]),                                                                       # exact repeat: warning
    ]


def broken_chapters() -> list[dict]:
    base = {"course_ref": "CRS-001", "chapter_slot": "first", "chapter_id": "", "title": "Intro", "description": "",
            "content": "", "content_type": "", "is_free": "", "additional_contents": ""}
    return [
        dict(base),
        {**base, "chapter_slot": "third"},                                                   # bad slot
        {**base, "chapter_slot": "second", "content": f"{CDN}/v.mp4"},                       # content w/o type
        {**base, "chapter_slot": "second", "content": f"{CDN}/v.mp4", "content_type": "hologram"},
        {**base, "course_ref": "", "chapter_slot": "", "chapter_id": "not-an-id"},
        {**base, "course_ref": "CRS-101", "chapter_slot": "first"},                          # refers to invalid course
        {**base, "course_ref": "", "chapter_slot": "", "chapter_id": "5f0c1e2d3b4a596877665544", "title": ""},
    ]


def fixed_chapters() -> list[dict]:
    """The chapters sheet with the two planted rows corrected, as a user would edit it (same rows)."""
    rows = chapters()
    rows[-2] = {**rows[-2], "content": f"{CDN}/video/CRS-015-intro.mp4"}  # the asset is on TagMango's CDN
    rows[-1] = {**rows[-1], "chapter_id": "", "course_ref": "CRS-016", "chapter_slot": "first"}  # a real chapter
    return rows


def write_workbook(path: Path, sheets: dict[str, list[dict]]) -> None:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, rows in sheets.items():
            pd.DataFrame(rows, dtype=object).to_excel(writer, sheet_name=name, index=False)


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    write_workbook(HERE / "catalog.xlsx", {"courses": courses(), "chapters": chapters()})
    write_csv(HERE / "catalog_courses.csv", courses())
    write_csv(HERE / "catalog_chapters.csv", chapters())
    write_workbook(HERE / "catalog_fixed.xlsx", {"courses": courses(), "chapters": fixed_chapters()})
    write_workbook(HERE / "broken.xlsx", {"Courses": broken_courses(), "Chapters": broken_chapters()})
    write_csv(HERE / "broken.csv", broken_courses())
    print("wrote", ", ".join(p.name for p in sorted(HERE.glob("*.xlsx")) + sorted(HERE.glob("*.csv"))))
