"""Host memory: everything a job puts on tmpfs is charged to the job's own memory cgroup.

The workspace is a tmpfs volume. Unpacked by the engine (put_archive), a repository of zeros took
host RAM that no cgroup accounted for; unpacked inside the box by the job's user it is the job's.
Measured through the container's cgroup (v1 here: memory.stat under /sys/fs/cgroup/memory/docker).
The box's limit is memory_mb + disk_mb + tmp_mb, so each cap holds while the others are full.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, JobFactory, Service, _git

pytestmark = pytest.mark.docker

MiB = 1024 * 1024
CGROUP_V1 = Path("/sys/fs/cgroup/memory/docker")


def zeros_repo(root: Path, files: dict[str, int]) -> str:
    """A repository whose files are `size` bytes of zeros each (tiny once compressed)."""
    root.mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")
    for name, size in files.items():
        with (root / name).open("wb") as fh:
            fh.truncate(size)  # sparse on the host; real pages once unpacked in the box
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    (root / "run.sh").chmod(0o755)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "zeros")
    return root.as_uri()


def memory_stat(container_id: str) -> dict[str, int]:
    path = CGROUP_V1 / container_id / "memory.stat"
    if not path.exists():
        pytest.fail(f"no cgroup v1 memory stats at {path}: this test reads the job's cgroup", pytrace=False)
    stats = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        stats[key] = int(value)
    return stats


def test_workspace_pages_are_charged_to_the_job(
    make_job: JobFactory, dexec: Any, docker_client: Any, tmp_path: Path
) -> None:
    url = zeros_repo(tmp_path / "zeros", {"blob.bin": 96 * MiB})
    job = make_job(clone_url=url, limits={"memory_mb": 256})
    stats = memory_stat(job["container_id"])
    # The 96 MiB of zeros live on the workspace tmpfs and are charged to THIS box (shmem), not
    # to no one (the engine's put_archive left them at 0 while the host's RAM grew by the file).
    assert stats["shmem"] >= 96 * MiB, stats
    assert int(dexec.ok(job, "stat -c %s /workspace/blob.bin").strip()) == 96 * MiB
    # unpacked by the job's user, modes kept (exec bit included)
    assert dexec.ok(job, "stat -c '%u %a' /workspace/blob.bin /workspace/run.sh").split() == [
        "1000", "644", "1000", "755"
    ]
    assert dexec.ok(job, "/workspace/run.sh").strip() == "ran"
    assert "nothing to commit" in dexec.ok(job, "git -C /workspace status")
    limits = job["limits"]
    host_config = docker_client.api.inspect_container(job["container_id"])["HostConfig"]
    tmp_mb = int(host_config["Tmpfs"]["/tmp"].split("size=")[1].split("m")[0])
    assert host_config["Memory"] == (limits["memory_mb"] + limits["disk_mb"] + tmp_mb) * MiB


def test_each_cap_holds_while_the_others_are_full(make_job: JobFactory, dexec: Any) -> None:
    job = make_job(limits={"memory_mb": 128, "disk_mb": 64})
    code, out = dexec(job, "head -c 60M /dev/zero > /workspace/fill && head -c 60M /dev/zero > /tmp/fill")
    assert code == 0, out
    stats = memory_stat(job["container_id"])
    assert stats["shmem"] >= 120 * MiB, stats
    # A full workspace and a full /tmp still leave memory_mb to the processes (perl peaks at
    # twice the string: ~100 MiB of a 128 MiB memory_mb; with the limit at memory_mb alone the
    # 120 MiB of files would leave it none) ...
    code, out = dexec(job, ["perl", "-e", "my $x = 'a' x (50 * 1024 * 1024); print length $x"])
    assert (code, out.strip()) == (0, str(50 * MiB)), out
    # ... and not much more: the sum is the box's limit.
    code, _ = dexec(job, ["perl", "-e", "my $x = 'a' x (400 * 1024 * 1024); print length $x"])
    assert code == 137


@pytest.mark.parametrize(
    "files",
    [{"big.bin": 40 * MiB}, {"a.bin": 10 * MiB, "b.bin": 10 * MiB, "c.bin": 10 * MiB}],
    ids=["one-file-over-the-cap", "files-summing-over-the-cap"],
)
def test_repo_larger_than_disk_cap_is_413_and_leaves_nothing(
    api: Api,
    make_job: JobFactory,
    docker_client: Any,
    service: Service,
    tmp_path: Path,
    files: dict[str, int],
) -> None:
    url = zeros_repo(tmp_path / "over", files)
    tag = secrets.token_hex(6)
    r = make_job.raw(make_job.body(clone_url=url, limits={"disk_mb": 16}, labels={"over": tag}))
    # Refused from the tree listing, before anything is checked out or unpacked.
    err = api.error(r, 413, "repo_too_large")
    assert "16 MiB" in err["message"] and err["details"]["cap"] == "size", err
    listed = api.get("/v1/jobs", params={"label": f"over:{tag}"}).json()["jobs"]
    assert [j["status"] for j in listed] == ["failed"], listed
    name = f"dockyard-{listed[0]['id']}"
    assert not docker_client.containers.list(all=True, filters={"name": name})
    assert not [v for v in docker_client.volumes.list() if v.name == name]
    work = service.state_dir / "work"
    assert not [p for p in work.iterdir() if p.name.startswith(listed[0]["id"])] if work.exists() else True
