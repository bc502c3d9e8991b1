"""The job container is hardened: checked from `docker inspect` and from inside the box."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.docker

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def info(job, docker_client):
    return docker_client.api.inspect_container(job["container_id"])


def test_network_is_none(info):
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert set(info["NetworkSettings"]["Networks"]) <= {"none"}


def test_runs_as_non_root_user(info):
    assert info["Config"]["User"] == "1000:1000"


def test_all_capabilities_dropped_and_no_new_privileges(info):
    hc = info["HostConfig"]
    assert [c.upper() for c in hc["CapDrop"]] in (["ALL"], ["CAP_ALL"])
    assert not hc.get("CapAdd")
    assert hc["Privileged"] is False
    assert any(opt.startswith("no-new-privileges") and not opt.endswith("false") for opt in hc["SecurityOpt"])


def test_init_and_read_only_rootfs(info):
    assert info["HostConfig"]["Init"] is True
    assert info["HostConfig"]["ReadonlyRootfs"] is True


def test_memory_cpu_pids_limits_match_the_job(info, job):
    hc = info["HostConfig"]
    limits = job["limits"]
    # The workspace and /tmp are tmpfs charged to the box: the cgroup limit is the sum of the caps.
    tmp_mb = int(re.search(r"size=(\d+)m", hc["Tmpfs"]["/tmp"]).group(1))  # type: ignore[union-attr]
    assert hc["Memory"] == (limits["memory_mb"] + limits["disk_mb"] + tmp_mb) * MiB
    assert hc["MemorySwap"] == hc["Memory"], "swap must not extend the memory cap"
    assert hc["NanoCpus"] == int(limits["cpus"] * 1e9)
    assert hc["PidsLimit"] == limits["pids"]


def test_ulimits_nofile_and_fsize_present(info):
    ulimits = {u["Name"]: u for u in info["HostConfig"]["Ulimits"] or []}
    assert "nofile" in ulimits and ulimits["nofile"]["Hard"] > 0
    assert "fsize" in ulimits and ulimits["fsize"]["Hard"] > 0


def test_no_host_paths_or_docker_socket_mounted(info, job):
    mounts = info["Mounts"]
    assert not info["HostConfig"].get("Binds")
    for m in mounts:
        assert m["Type"] != "bind", m
        assert "docker.sock" not in (m.get("Source") or ""), m
    assert [m["Destination"] for m in mounts] == ["/workspace"]
    assert mounts[0]["Name"] == f"dockyard-{job['id']}"


def test_no_credentials_in_the_container_env(info, dexec, job, service):
    env = "\n".join(info["Config"]["Env"] or [])
    proc1 = dexec.ok(job, "tr '\\0' '\\n' < /proc/1/environ")
    for token in service.tokens.values():
        assert token not in env
        assert token not in proc1
    assert "TOKEN" not in env.upper() and "KEY=" not in env.upper()


def test_inside_capabilities_are_empty_and_no_new_privs(dexec, job):
    status = dexec.ok(job, "cat /proc/self/status")
    assert re.search(r"^CapEff:\s*0000000000000000$", status, re.M), status
    assert re.search(r"^CapPrm:\s*0000000000000000$", status, re.M), status
    assert re.search(r"^NoNewPrivs:\s*1$", status, re.M), status


def test_inside_user_is_1000(dexec, job):
    assert dexec.ok(job, ["id", "-u"]).strip() == "1000"
    assert dexec.ok(job, ["id", "-g"]).strip() == "1000"


def test_inside_only_loopback_interface(dexec, job):
    assert dexec.ok(job, ["ls", "/sys/class/net"]).split() == ["lo"]


def test_inside_root_filesystem_is_read_only(dexec, job):
    # As root in the box too (uid 0 passes file permissions): only the read-only mount stops it.
    code, out = dexec(job, "touch /usr/local/bin/planted || touch /planted", user="0:0")
    assert code != 0 and "Read-only file system" in out, out
    code, out = dexec(job, "touch /workspace/.writable-probe && rm /workspace/.writable-probe")
    assert code == 0, f"the workspace itself must stay writable: {out}"


def test_disk_cap_limits_what_exec_can_write(make_job, dexec):
    job = make_job(limits={"disk_mb": 16})
    assert job["limits"]["disk_mb"] == 16
    code, _ = dexec(job, "head -c 40M /dev/zero > /workspace/big")
    assert code != 0, "writing 40 MiB into a 16 MiB workspace must fail"
    size = int(dexec.ok(job, "stat -c %s /workspace/big").strip())
    assert size <= 16 * MiB
    # two files each under the single-file cap still cannot exceed the volume's cap together
    dexec(job, "rm -f /workspace/big")
    code, _ = dexec(job, "head -c 10M /dev/zero > /workspace/f1 && head -c 10M /dev/zero > /workspace/f2")
    assert code != 0
    total = int(dexec.ok(job, "du -sb /workspace | cut -f1").strip())
    assert total <= 17 * MiB, total


def test_disk_cap_refuses_write_file_when_full_and_leaves_nothing(api, make_job, dexec):
    job = make_job(limits={"disk_mb": 16})
    dexec(job, "head -c 15M /dev/zero > /workspace/filler; head -c 15M /dev/zero > /workspace/filler2")
    r = api.tool(job["id"], "write_file", path="overflow.txt", content="x" * (2 * MiB))
    api.error(r, 413, "payload_too_large")
    api.error(api.tool(job["id"], "read_file", path="overflow.txt"), 404, "file_not_found")
    leftovers = dexec.ok(job, "ls -A /workspace").split()
    assert not [n for n in leftovers if n.startswith(".dockyard-tmp")], leftovers
    # the job stays usable once space is freed
    dexec(job, "rm -f /workspace/filler /workspace/filler2")
    assert api.write(job["id"], "after.txt", "fine\n")["created"] is True
