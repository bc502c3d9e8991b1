"""read_file: byte-exact content, line ranges, numbering, caps and the errors."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker

READ_CAP = 256 * 1024
UNICODE_PATH = "ünï/cödé.py"


def test_whole_file_is_byte_exact(api, job, fixture_repo):
    got = api.read(job["id"], "src/app.py")
    data = fixture_repo.files["src/app.py"]
    assert got["path"] == "src/app.py"
    assert got["content"] == data.decode()
    assert got["size_bytes"] == len(data)
    assert got["total_lines"] == data.count(b"\n")
    assert got["start_line"] == 1
    assert got["end_line"] == got["total_lines"]
    assert got["truncated"] is False


def test_crlf_line_endings_are_preserved(api, job):
    got = api.read(job["id"], "crlf.txt")
    assert got["content"] == "a\r\nb\r\n"
    assert got["total_lines"] == 2
    assert got["size_bytes"] == 6


def test_numbered_is_cat_n_format(api, job):
    got = api.read(job["id"], "crlf.txt", numbered=True)
    assert got["content"] == "     1\ta\r\n     2\tb\r\n"


def test_numbered_range_starts_at_the_real_line_number(api, job):
    got = api.read(job["id"], "src/app.py", start_line=4, end_line=5, numbered=True)
    assert got["content"] == "     4\tdef foo(x):\n     5\t    return x + 1\n"


def test_line_range_is_inclusive(api, job, fixture_repo):
    lines = fixture_repo.files["big.txt"].decode().splitlines(keepends=True)
    got = api.read(job["id"], "big.txt", start_line=10, end_line=12)
    assert got["content"] == "".join(lines[9:12])
    assert got["start_line"] == 10
    assert got["end_line"] == 12
    assert got["total_lines"] == len(lines)
    assert got["size_bytes"] == len(fixture_repo.files["big.txt"])
    assert got["truncated"] is False


def test_start_line_alone_reads_to_the_end(api, job, fixture_repo):
    lines = fixture_repo.files["src/app.py"].decode().splitlines(keepends=True)
    got = api.read(job["id"], "src/app.py", start_line=8)
    assert got["content"] == "".join(lines[7:])
    assert got["end_line"] == len(lines)


def test_end_line_past_the_end_is_clamped(api, job):
    got = api.read(job["id"], "crlf.txt", start_line=2, end_line=99)
    assert got["content"] == "b\r\n"
    assert got["end_line"] == 2


def test_start_line_past_the_end_is_an_error(api, job):
    api.error(api.tool(job["id"], "read_file", path="crlf.txt", start_line=50), 400)


def test_huge_start_line_is_a_client_error(api, job):
    api.error(api.tool(job["id"], "read_file", path="crlf.txt", start_line=2**62), 400)


def test_end_before_start_is_an_error(api, job):
    api.error(api.tool(job["id"], "read_file", path="big.txt", start_line=10, end_line=5), 400)


def test_file_without_trailing_newline_keeps_it_missing(api, job):
    got = api.read(job["id"], "tabs.txt")
    assert got["content"] == "col1\tcol2\n\tindented\tvalue"
    assert got["total_lines"] == 2


def test_unicode_path_and_content_round_trip(api, job, fixture_repo):
    got = api.read(job["id"], UNICODE_PATH)
    assert got["path"] == UNICODE_PATH
    assert got["content"] == fixture_repo.files[UNICODE_PATH].decode("utf-8")
    assert got["size_bytes"] == len(fixture_repo.files[UNICODE_PATH])


def test_big_file_is_truncated_at_a_line_boundary(api, job, fixture_repo):
    data = fixture_repo.files["big.txt"].decode()
    got = api.read(job["id"], "big.txt")
    assert got["truncated"] is True
    content = got["content"]
    assert 0 < len(content.encode()) <= READ_CAP
    assert content.endswith("\n")
    assert data.startswith(content)
    assert got["end_line"] == content.count("\n")
    assert got["total_lines"] == data.count("\n")
    assert got["size_bytes"] == len(data)
    assert len(content.encode()) > READ_CAP - 200, "cut far earlier than the cap"


def test_big_file_can_be_paged_past_the_cap(api, job, fixture_repo):
    lines = fixture_repo.files["big.txt"].decode().splitlines(keepends=True)
    got = api.read(job["id"], "big.txt", start_line=len(lines) - 2)
    assert got["content"] == "".join(lines[-3:])
    assert got["truncated"] is False


def test_numbered_big_file_stays_within_the_cap(api, job):
    got = api.read(job["id"], "big.txt", numbered=True)
    assert got["truncated"] is True
    assert len(got["content"].encode()) <= READ_CAP
    assert got["content"].endswith("\n")
    assert got["content"].startswith("     1\t0000001 ")


def test_binary_file_is_refused(api, job):
    api.error(api.tool(job["id"], "read_file", path="bin/blob.bin"), 400, "binary_file")


def test_missing_file_is_404(api, job):
    err = api.error(api.tool(job["id"], "read_file", path="src/nope.py"), 404, "file_not_found")
    assert "src/nope.py" in err["message"] + str(err["details"])


def test_symlink_inside_the_tree_is_followed(api, job, fixture_repo):
    got = api.read(job["id"], "link_in")
    assert got["content"] == fixture_repo.text("src/app.py")


def test_directory_path_is_an_error(api, job):
    r = api.tool(job["id"], "read_file", path="src")
    api.error(r, (400, 404, 409))


def test_executable_and_nested_files_read(api, job, fixture_repo):
    assert api.read(job["id"], "scripts/run.sh")["content"] == fixture_repo.text("scripts/run.sh")
    assert api.read(job["id"], "a/b/c/deep.txt")["content"] == "deep content\n"
    assert api.read(job["id"], "./a/b/c/deep.txt")["content"] == "deep content\n"
