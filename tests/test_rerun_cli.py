"""The defect of issue 13 as a user met it: the same file run from two folders (two embedded Redis servers,
two ledgers) against the same TagMango creates nothing the second time; and the dry-run diff on the
command line."""

from __future__ import annotations

import json

from tests.helpers import HOST, MANGO, SAMPLES, TOKEN, cli, env_for


def test_the_same_file_from_another_folder_writes_nothing(sandbox, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    results = {}
    for folder in (first, second):
        env = env_for(folder, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
        done = cli(folder, "run", str(SAMPLES / "catalog_fixed.xlsx"), "--host", HOST, "--json", "--results",
                   str(folder / "results.csv"), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        results[folder] = (json.loads(done.stdout[done.stdout.index("{"):]), sandbox.stats())
    (summary1, stats1), (summary2, stats2) = results[first], results[second]
    assert summary1["counts"]["succeeded"] == 50
    assert summary2["counts"]["skipped"] == 50 and summary2["counts"]["succeeded"] == 0
    assert stats2["writes"] == stats1["writes"] and stats2["courses_by_host"] == {HOST: 20}
    rows = (second / "results.csv").read_text(encoding="utf-8-sig").splitlines()
    assert sum(",exists," in r for r in rows) == 20 and sum(",unchanged," in r for r in rows) == 30


def test_validate_with_a_mode_prints_the_diff_and_writes_nothing(sandbox, tmp_path):
    env = env_for(tmp_path, TAGMANGO_API_URL=sandbox.url, TAGMANGO_API_TOKEN=TOKEN)
    header = "course_ref,course_title,mangoes,module_title,chapter_title,chapter_description\n"
    tree = tmp_path / "tree.csv"
    tree.write_text(header + f"K1,Watercolour,{MANGO},Materials,Paper,p\nK1,Watercolour,{MANGO},Materials,Brushes,b\n")
    assert cli(tmp_path, "run", str(tree), "--host", HOST, env=env).returncode == 0
    tree.write_text(header + f"K1,Watercolour,{MANGO},Materials,Paper,p\nK1,Watercolour,{MANGO},Materials,Brush,b\n"
                    f"K1,Watercolour,{MANGO},Washes,Flat,f\n")
    writes = sandbox.stats()["writes"]
    report = tmp_path / "changes.csv"
    done = cli(tmp_path, "validate", str(tree), "--mode", "merge", "--host", HOST, "--report", str(report), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Course 'K1'" in done.stdout and "~ update lesson 1.2 'Brush' (row 3): title 'Brushes' → 'Brush'" in \
        done.stdout
    assert "+ create module 2 'Washes'" in done.stdout and "+ create lesson 2.1 'Flat' (row 4)" in done.stdout
    assert "Dry run: nothing was written to TagMango." in done.stdout
    assert sandbox.stats()["writes"] == writes
    lines = report.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "file,sheet,row,kind,title,action,field,old,new,note"
    assert any(",update,title,Brushes,Brush," in line for line in lines)
    plain = cli(tmp_path, "validate", str(tree))  # without --mode: offline, as before
    assert plain.returncode == 0 and "Compared with TagMango" not in plain.stdout
