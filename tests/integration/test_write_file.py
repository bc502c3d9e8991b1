"""write_file: creates folders, byte-exact content, created flag, modes kept, caps."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.docker

MiB = 1024 * 1024
WRITE_CAP = 4 * MiB


def test_new_file_in_new_nested_folders(api, job, dexec):
    content = "first\r\nsecond\twith tab\nthird: Grüße 世界 🚀\nno newline at end"
    got = api.write(job["id"], "new/deeper/still/file.txt", content)
    assert got["path"] == "new/deeper/still/file.txt"
    assert got["created"] is True
    assert got["bytes_written"] == len(content.encode("utf-8"))
    assert got["bytes_written"] != len(content)  # the fixture is multi-byte on purpose
    back = api.read(job["id"], "new/deeper/still/file.txt")
    assert back["content"] == content
    assert back["size_bytes"] == len(content.encode("utf-8"))
    raw = dexec.ok(job, ["od", "-An", "-c", "/workspace/new/deeper/still/file.txt"])
    assert "\\r  \\n" in raw and "\\t" in raw


def test_overwrite_reports_not_created(api, job):
    assert api.write(job["id"], "over.txt", "one\n")["created"] is True
    got = api.write(job["id"], "over.txt", "two\n")
    assert got["created"] is False
    assert got["bytes_written"] == 4
    assert api.read(job["id"], "over.txt")["content"] == "two\n"


def test_overwrite_existing_repo_file(api, job):
    got = api.write(job["id"], "README.md", "replaced\n")
    assert got["created"] is False
    assert api.read(job["id"], "README.md")["content"] == "replaced\n"


def test_empty_content_writes_an_empty_file(api, job, dexec):
    got = api.write(job["id"], "empty.txt", "")
    assert got["bytes_written"] == 0 and got["created"] is True
    assert dexec.ok(job, ["stat", "-c", "%s", "/workspace/empty.txt"]).strip() == "0"


def test_executable_bit_survives_overwrite(api, job, dexec):
    assert dexec.ok(job, ["stat", "-c", "%a", "/workspace/scripts/run.sh"]).strip() == "755"
    api.write(job["id"], "scripts/run.sh", "#!/bin/sh\necho changed\n")
    assert dexec.ok(job, ["stat", "-c", "%a", "/workspace/scripts/run.sh"]).strip() == "755"
    assert dexec.ok(job, ["/workspace/scripts/run.sh"]).strip() == "changed"


def test_new_file_is_not_executable_and_owned_by_the_box_user(api, job, dexec):
    api.write(job["id"], "plain.txt", "x\n")
    assert dexec.ok(job, ["stat", "-c", "%a %u", "/workspace/plain.txt"]).strip() == "644 1000"


def test_write_through_symlink_inside_tree_changes_target(api, job):
    api.write(job["id"], "link_in", "print('via link')\n")
    assert api.read(job["id"], "src/app.py")["content"] == "print('via link')\n"


def test_content_over_the_write_cap_is_413_and_nothing_written(api, job):
    r = api.tool(job["id"], "write_file", path="huge/too_big.txt", content="x" * (WRITE_CAP + 1))
    api.error(r, 413, "payload_too_large")
    api.error(api.tool(job["id"], "read_file", path="huge/too_big.txt"), 404, "file_not_found")
    listing = api.tool_ok(job["id"], "list_directory", path=".", depth=1)
    assert "huge" not in [e["path"] for e in listing["entries"]], "a refused write created a folder"


def test_content_at_the_write_cap_is_accepted(api, job):
    got = api.write(job["id"], "at_cap.txt", "y" * WRITE_CAP)
    assert got["bytes_written"] == WRITE_CAP


def test_body_over_8_mib_is_413(api, job):
    r = api.tool(job["id"], "write_file", path="body_too_big.txt", content="z" * (9 * MiB))
    api.error(r, 413, "payload_too_large")
    api.error(api.tool(job["id"], "read_file", path="body_too_big.txt"), 404, "file_not_found")


def test_write_to_a_directory_path_is_an_error(api, job):
    r = api.tool(job["id"], "write_file", path="src", content="x")
    api.error(r, (400, 409))
    assert api.tool_ok(job["id"], "list_directory", path="src")["entries"]


def test_write_under_a_file_as_folder_is_an_error(api, job):
    r = api.tool(job["id"], "write_file", path="crlf.txt/child.txt", content="x")
    api.error(r, (400, 409))
    assert api.read(job["id"], "crlf.txt")["content"] == "a\r\nb\r\n"


def test_missing_content_field_is_invalid_request(api, job):
    api.error(api.tool(job["id"], "write_file", path="x.txt"), 400, "invalid_request")


def test_lone_surrogate_is_invalid_request_and_writes_nothing(api, job):
    r = api.tool(job["id"], "write_file", path="surrogate.txt", content="bad \ud800 text")
    api.error(r, 400, "invalid_request")
    api.error(api.tool(job["id"], "read_file", path="surrogate.txt"), 404, "file_not_found")


def test_concurrent_writes_to_one_job_all_land(api, job):
    def one(i):
        path = f"par/file_{i}.txt"
        api.write(job["id"], path, f"content {i}\n" * 50)
        return api.read(job["id"], path)["content"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(16)))
    assert results == [f"content {i}\n" * 50 for i in range(16)]
    listing = api.tool_ok(job["id"], "list_directory", path="par")
    assert len(listing["entries"]) == 16, "a temp file was left behind or a write was lost"
