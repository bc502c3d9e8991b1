"""Cloning on the service side: only allowed URLs, no option injection, no credential echoed or kept."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.docker


@pytest.fixture
def trap(tmp_path):
    """An executable that leaves a marker file if anything ever runs it."""
    marker = tmp_path / "ran"
    script = tmp_path / "trap.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    os.chmod(script, 0o755)
    return script, marker


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ext::sh -c touch% {marker}", "invalid_request"),
        ("ssh://git@127.0.0.1:1/x.git", "clone_source_forbidden"),
        ("--upload-pack={script}", "invalid_request"),
        ("relative/path/repo", "invalid_request"),
        ("fd::17", "invalid_request"),
    ],
)
def test_disallowed_clone_urls_are_refused_and_run_nothing(api, make_job, trap, url, code):
    script, marker = trap
    r = make_job.raw(make_job.body(clone_url=url.format(marker=marker, script=script)))
    api.error(r, 400, code)
    assert not marker.exists(), "the clone URL made the service run a command"


def test_ref_cannot_inject_git_options(api, make_job, trap):
    script, marker = trap
    r = make_job.raw(make_job.body(ref=f"--upload-pack={script}"))
    api.error(r, (400, 404))  # refused, or looked up as a (missing) ref: never run
    assert not marker.exists(), "the ref made the service run a command"


def test_credentials_in_clone_url_are_never_echoed(api, make_job):
    r = make_job.raw(make_job.body(clone_url="https://someone:s3cr3t-t0ken@127.0.0.1:9/owner/repo.git"))
    api.error(r, 400, "clone_source_forbidden")
    assert "s3cr3t-t0ken" not in r.text


def test_workspace_keeps_no_remote_url(api, job, dexec, fixture_repo):
    config = dexec.ok(job, ["cat", "/workspace/.git/config"])
    assert str(fixture_repo.path) not in config
    assert "[remote" not in config
    assert "hooksPath" not in config or "/dev/null" in config


def test_clone_of_a_path_that_is_not_a_repository_is_repo_not_found(api, make_job, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file.txt").write_text("x")
    r = make_job.raw(make_job.body(clone_url=(tmp_path / "plain").as_uri()))
    api.error(r, 404, "repo_not_found")
