"""`new` is positional: base diagnostics mapped through real `git diff` hunks of the changed file."""

from __future__ import annotations

import subprocess
from pathlib import Path

from service.lint.parsers import Diagnostic
from service.lint.positions import judge_new, parse_patch


def patch_of(tmp: Path, before: dict[str, str], after: dict[str, str]) -> bytes:
    """A real `git diff --patch` of the workspace against the base commit (as the helper runs it)."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "core.quotepath=off"]
    subprocess.run([*git, "init", "-q", str(tmp)], check=True)
    for rel, text in before.items():
        (tmp / rel).write_text(text)
    subprocess.run([*git, "-C", str(tmp), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(tmp), "commit", "-qm", "base"], check=True)
    for rel in before:
        (tmp / rel).unlink()
    for rel, text in after.items():
        (tmp / rel).write_text(text)
    subprocess.run([*git, "-C", str(tmp), "add", "-A"], check=True)
    return subprocess.run(
        [*git, "-C", str(tmp), "diff", "--cached", "--no-renames", "--patch", "HEAD"],
        check=True,
        capture_output=True,
    ).stdout


def d(
    line: int, code: str = "F401", message: str = "`os` imported but unused", path: str = "a.py"
) -> Diagnostic:
    return Diagnostic(path, line, 1, code, message, "error")


def verdict(
    tmp: Path, before: str, after: str, base: list[Diagnostic], current: list[Diagnostic]
) -> list[bool]:
    maps = parse_patch(patch_of(tmp, {"a.py": before}, {"a.py": after}))
    return judge_new(current, base, maps, {"a.py": "modified"})


def test_duplicate_message_injected_above_the_old_one(tmp_path: Path) -> None:
    # The old `import os` on line 3 moves to line 4; the injected copy on line 1 is the new one,
    # although the same message exists further down (counting in file order got this backwards).
    before = "x = 1\ny = 2\nimport os\n"
    after = "import os\nx = 1\ny = 2\nimport os\n"
    assert verdict(tmp_path, before, after, [d(3)], [d(1), d(4)]) == [True, False]


def test_duplicate_message_injected_below_the_old_one(tmp_path: Path) -> None:
    before = "import os\nx = 1\n"
    after = "import os\nx = 1\nimport os\n"
    assert verdict(tmp_path, before, after, [d(1)], [d(1), d(3)]) == [False, True]


def test_insertions_above_shift_old_debt(tmp_path: Path) -> None:
    before = "import os\n" + "".join(f"v{i} = {i}\n" for i in range(20)) + "import sys\n"
    after = "import json\n\n" + before
    sys_msg = "`sys` imported but unused"
    current = [d(1, message="`json` imported but unused"), d(3), d(24, message=sys_msg)]
    assert verdict(tmp_path, before, after, [d(1), d(22, message=sys_msg)], current) == [True, False, False]


def test_deletions_above_shift_old_debt_up(tmp_path: Path) -> None:
    before = "".join(f"v{i} = {i}\n" for i in range(10)) + "import os\n"
    after = "".join(f"v{i} = {i}\n" for i in range(3, 10)) + "import os\n"
    assert verdict(tmp_path, before, after, [d(11)], [d(8)]) == [False]


def test_a_rewritten_line_owns_what_is_on_it(tmp_path: Path) -> None:
    # The same message, but on a line the change rewrote: no base diagnostic maps there.
    before = "import os\nx = 1\n"
    after = "import os  # keep\nx = 1\n"
    assert verdict(tmp_path, before, after, [d(1)], [d(1)]) == [True]


def test_moved_line_keeps_its_debt(tmp_path: Path) -> None:
    body = "".join(f"v{i} = {i}\n" for i in range(10))
    before = "import os\n" + body
    after = body + "import os\n"  # the same line moved to the end (a delete and an add)
    assert verdict(tmp_path, before, after, [d(1)], [d(11)]) == [False]


def test_moved_line_does_not_excuse_a_second_copy(tmp_path: Path) -> None:
    body = "".join(f"v{i} = {i}\n" for i in range(10))
    after = body + "import os\nimport os\n"  # moved once, copied once: one of them is new
    assert verdict(tmp_path, "import os\n" + body, after, [d(1)], [d(11), d(12)]) == [False, True]


def test_fixed_old_debt_does_not_vouch_for_a_new_one(tmp_path: Path) -> None:
    # The old import was removed, a new one with the same message written elsewhere.
    before = "import os\nx = 1\ny = 2\n"
    after = "x = 1\nimport os as _o\ny = 2\n"
    assert verdict(tmp_path, before, after, [d(1)], [d(2)]) == [True]


def test_unchanged_and_added_files(tmp_path: Path) -> None:
    maps = parse_patch(patch_of(tmp_path, {"a.py": "x = 1\n"}, {"a.py": "x = 1\n", "b.py": "import os\n"}))
    current = [d(1, path="a.py"), d(1, path="b.py")]
    base = [d(1, path="b.py")]  # b.py did not exist: nothing of it can be old
    # a.py is unchanged: its findings are old without any base run
    assert judge_new(current, base, maps, {"b.py": "added"}) == [False, True]


def test_a_file_without_a_patch_falls_back_to_counts(tmp_path: Path) -> None:
    patch = patch_of(tmp_path, {"a.py": "x = 1\n"}, {"a.py": "import os\nx = 1\n"})
    maps = parse_patch(patch, truncated=True)  # a cut diff: the last (only) file is not trusted
    assert maps == {}
    assert judge_new([d(1), d(2)], [d(5)], maps, {"a.py": "modified"}) == [False, True]


def test_several_hunks_and_quoted_names(tmp_path: Path) -> None:
    before = "".join(f"l{i}\n" for i in range(1, 41))
    lines = before.splitlines(keepends=True)
    lines.insert(2, "new-a\n")  # after old line 2
    del lines[20]  # old line 20
    lines.insert(35, "new-b\nnew-c\n")
    after = "".join(lines)
    name = 'we"ird\tname.py'
    maps = parse_patch(patch_of(tmp_path, {name: before}, {name: after}))
    fmap = maps[name]
    assert [fmap.to_new(n) for n in (1, 2, 3, 19, 20, 21, 35, 36, 40)] == [1, 2, 4, 20, None, 21, 35, 38, 42]
