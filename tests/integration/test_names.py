"""Awkward file names survive every tool: quotes, backslashes, spaces, newlines, dashes, unicode."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker

NAMES = [
    'weird/quote"d.txt',
    "weird/back\\slash.txt",
    "weird/ lead and trail .txt",
    "weird/new\nline.txt",
    "weird/-dash.txt",
    "weird/tab\there.txt",
    "weird/ünïcödé 世界.txt",
    "weird/semi;colon$(x)`y`.txt",
]


@pytest.fixture(scope="module")
def named(api, job):
    for i, name in enumerate(NAMES):
        api.write(job["id"], name, f"findme-{i}\n")
    return job


@pytest.mark.parametrize("index", range(len(NAMES)))
def test_read_back(api, named, index):
    got = api.read(named["id"], NAMES[index])
    assert got["content"] == f"findme-{index}\n"
    assert got["path"] == NAMES[index]


def test_listing_has_every_name_exactly(api, named):
    got = api.tool_ok(named["id"], "list_directory", path="weird", depth=1)
    assert sorted(e["path"] for e in got["entries"]) == sorted(NAMES)


def test_search_reports_exact_paths(api, named):
    got = api.tool_ok(named["id"], "search", pattern="findme-", path="weird")
    found = {m["path"]: m["text"] for m in got["matches"]}
    assert found == {name: f"findme-{i}" for i, name in enumerate(NAMES)}


def test_diff_reports_exact_paths(api, named):
    r = api.get(f"/v1/jobs/{named['id']}/diff")
    assert r.status_code == 200, r.text
    paths = {f["path"] for f in r.json()["files"]}
    assert paths >= set(NAMES), sorted(set(NAMES) - paths)


def test_non_utf8_file_name_does_not_break_tools(api, job, dexec):
    dexec.ok(job, "mkdir -p /workspace/latin && printf 'x\\n' > /workspace/latin/caf$(printf '\\351').txt")
    r = api.tool(job["id"], "list_directory", path="latin")
    assert r.status_code == 200, r.text
    assert len(r.json()["entries"]) == 1
    r = api.tool(job["id"], "search", pattern="x", path="latin")
    assert r.status_code == 200, r.text
    r = api.get(f"/v1/jobs/{job['id']}/diff")
    assert r.status_code == 200, r.text
