"""One troubleshooting table: the README shows it as it is, and it covers every code the importer gives."""

from __future__ import annotations

from pathlib import Path

from importer.report import troubleshooting
from tasks.retry import ACCOUNT_ERROR_CODES
from tasks.rows import ErrorCode

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_readme_shows_the_table_exactly():
    assert troubleshooting.markdown() in README


def test_every_code_of_the_importer_has_advice():
    own = {v for k, v in vars(ErrorCode).items() if k.isupper()} | set(ACCOUNT_ERROR_CODES)
    assert own <= set(troubleshooting.BY_CODE)
    for code in troubleshooting.BY_CODE:
        assert f"{code}" in README
    assert "HTTP 418" in troubleshooting.advice("418").label  # unknown codes still get a line
