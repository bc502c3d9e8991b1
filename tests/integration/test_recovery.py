"""Restart and faults against the real engine: kill -9, a create cut off by a crash, boxes removed
behind the service's back, orphans from a crash, the TTL reaper, SIGTERM with a request in
flight, the engine going away and coming back, and the job cap.

Each test runs its own service instance (own state dir, own `dockyard.instance` label), so the
session's service and its jobs are never touched; the engine outage is simulated with a TCP
proxy to the engine socket that the test cuts and restores, never by stopping dockerd.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests

from tests.integration.aux_service import AuxService, audit, aux, gone, verify, wait_for

pytestmark = pytest.mark.docker


# --- crashes -------------------------------------------------------------------------------------


def test_kill_9_mid_job_loses_no_committed_state(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, make_job):
        job = make_job()
        api.write(job["id"], "kept.txt", "written before the crash\n")
        before = audit(api, job_id=job["id"])
        # A request in flight when the process dies.
        errors: list[BaseException] = []

        def call() -> None:
            try:
                api.tool(job["id"], "read_file", path="big.txt")
            except requests.RequestException as e:
                errors.append(e)

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.05)
        svc.kill9()
        thread.join(timeout=30)

        svc.start()
        got = api.job(job["id"])
        assert got["status"] == "ready" and got["container_id"] == job["container_id"]
        assert api.read(job["id"], "kept.txt")["content"] == "written before the crash\n"
        api.write(job["id"], "after.txt", "after the restart\n")
        after = audit(api, job_id=job["id"])
        assert [r["hash"] for r in after[: len(before)]] == [r["hash"] for r in before]
        assert verify(api)["ok"] is True


def test_create_cut_off_by_a_crash_becomes_failed_and_leaves_nothing(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, make_job):
        job = make_job()
        svc.kill9()
        # What a service killed between "creating" and "ready" leaves: the record says creating,
        # the engine may hold a half-made box.
        with svc.db() as db:
            db.execute("UPDATE jobs SET status = 'creating' WHERE id = ?", (job["id"],))
        svc.start()
        got = api.job(job["id"])
        assert got["status"] == "failed" and "being created" in got["error"], got
        assert gone(docker_client, f"dockyard-{job['id']}")
        records = audit(api, job_id=job["id"], action="job.fail")
        assert [r["outcome"] for r in records] == ["interrupted"]


def test_box_removed_behind_the_service_is_failed_without_any_request(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (_svc, api, make_job):
        job = make_job()
        other = make_job()
        docker_client.containers.get(job["container_id"]).remove(force=True)
        # Nobody asks: the reaper's pass notices, fails the job and removes its volume.
        wait_for(lambda: gone(docker_client, f"dockyard-{job['id']}"), what="the leftover volume to go")
        got = api.job(job["id"])
        assert got["status"] == "failed" and "vanished" in got["error"]
        api.error(api.tool(job["id"], "read_file", path="README.md"), 409, "job_not_ready")
        assert api.read(other["id"], "README.md")["content"].startswith("# fixture")
        assert [r["outcome"] for r in audit(api, job_id=job["id"], action="job.fail")] == ["vanished"]


def test_orphans_are_removed_at_start_and_foreign_boxes_are_not(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, make_job):
        job = make_job()
        image = job["image"]
        mine = {"dockyard.managed": "true", "dockyard.instance": svc.instance()}
        ghost = "job_" + os.urandom(8).hex()
        made: list[Any] = []
        try:
            svc.stop()

            def box(name: str, labels: dict[str, str]) -> None:
                made.append(
                    docker_client.containers.run(
                        image,
                        ["sleep", "infinity"],
                        name=name,
                        labels=labels,
                        detach=True,
                        network_mode="none",
                    )
                )

            box(f"dockyard-{ghost}", {**mine, "dockyard.job": ghost})  # a job this store never had
            box(
                f"dockyard-{job['id']}-lint-ruff-abc123", {**mine, "dockyard.job": job["id"]}
            )  # a crash's linter
            box(
                f"dockyard-{ghost}-foreign",
                {"dockyard.managed": "true", "dockyard.instance": "dy-someone-else"},
            )
            orphan_volume = docker_client.volumes.create(
                name=f"dockyard-{ghost}-vol", labels={**mine, "dockyard.job": ghost}
            )
            made.append(orphan_volume)
            svc.start()  # the start-up pass runs before the first request is served

            assert gone(docker_client, f"dockyard-{ghost}")
            assert gone(docker_client, f"dockyard-{job['id']}-lint-ruff-abc123")
            assert gone(docker_client, f"dockyard-{ghost}-vol")
            assert docker_client.containers.get(f"dockyard-{ghost}-foreign").status == "running"
            assert api.job(job["id"])["status"] == "ready"
            assert docker_client.containers.get(job["container_id"]).status == "running"
            assert api.read(job["id"], "README.md")["content"].startswith("# fixture")
            reaped = {r["details"]["name"] for r in audit(api, action="reap") if r["outcome"] == "orphan"}
            assert reaped == {
                f"dockyard-{ghost}",
                f"dockyard-{job['id']}-lint-ruff-abc123",
                f"dockyard-{ghost}-vol",
            }
        finally:
            for thing in made:
                with contextlib.suppress(docker.errors.NotFound):
                    thing.remove(force=True)


# --- the TTL reaper ------------------------------------------------------------------------------


def _expire(svc: AuxService, job_id: str) -> None:
    with svc.db() as db:
        db.execute("UPDATE jobs SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?", (job_id,))


def test_expired_job_is_reaped_at_start(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, make_job):
        job = make_job(ttl_s=60)
        svc.stop()
        _expire(svc, job["id"])
        svc.start()
        got = wait_for(lambda: (j := api.job(job["id"]))["status"] == "destroyed" and j, what="the reap")
        assert "expired" in got["error"]
        assert gone(docker_client, f"dockyard-{job['id']}")
        [record] = audit(api, job_id=job["id"], action="reap")
        assert record["outcome"] == "expired" and record["actor"] == "dockyard" and record["role"] == "system"


def test_expired_job_is_reaped_by_the_running_service(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, make_job):
        job = make_job(ttl_s=60)
        keep = make_job(ttl_s=3600)
        _expire(svc, job["id"])  # SQLite takes a second writer; the service sees it on its next pass
        wait_for(lambda: api.job(job["id"])["status"] == "destroyed", timeout=20, what="the reap")
        assert gone(docker_client, f"dockyard-{job['id']}")
        api.error(api.tool(job["id"], "read_file", path="README.md"), 409, "job_not_ready")
        assert api.job(keep["id"])["status"] == "ready"
        trail = svc.state_dir / "trail" / "jobs" / f"{job['id']}.json"
        wait_for(trail.exists, what="the outcome trail")
        metrics = requests.get(f"{svc.url}/metrics", timeout=10).text
        assert 'dockyard_reaped_sandboxes_total{reason="expired"} 1.0' in metrics


# --- SIGTERM -------------------------------------------------------------------------------------


def test_sigterm_finishes_the_request_in_flight_and_leaves_sandboxes(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, make_job):
        job = make_job(limits={"tool_timeout_s": 3})
        docker_client.containers.get(job["container_id"]).exec_run(["mkfifo", "/workspace/slow"])
        answers: list[requests.Response] = []
        # ripgrep blocks on a FIFO: the exec runs to its 3 s deadline, the request with it.
        thread = threading.Thread(
            target=lambda: answers.append(api.tool(job["id"], "search", pattern="x", path="slow"))
        )
        thread.start()
        time.sleep(1.0)
        assert svc.proc is not None
        proc = svc.proc
        proc.send_signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json()["timed_out"] is True
        assert proc.wait(timeout=20) == 0
        svc.proc = None
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{svc.url}/healthz", timeout=2)
        assert docker_client.containers.get(job["container_id"]).status == "running"
        svc.start()
        assert api.job(job["id"])["status"] == "ready"
        assert api.read(job["id"], "README.md")["content"].startswith("# fixture")


# --- the engine going away -------------------------------------------------------------------------


class EngineProxy:
    """127.0.0.1:PORT → the engine's unix socket; `cut()` drops every connection and stops listening."""

    def __init__(self, target: str):
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._listener is not listener:  # cut while accept() was blocked: the engine is away
                client.close()
                return
            engine = socket.socket(socket.AF_UNIX)
            try:
                engine.connect(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, engine}
            for a, b in ((client, engine), (engine, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()


def _engine_socket() -> str | None:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host.removeprefix("unix://") if host.startswith("unix://") else None


def test_engine_away_is_503_and_the_service_recovers_by_itself(tmp_path, fixture_repo, docker_client):
    target = _engine_socket()
    if target is None or not Path(target).exists():
        pytest.skip("needs the engine on a local unix socket")
    proxy = EngineProxy(target)
    proxy.up()
    try:
        with aux(tmp_path, fixture_repo, docker_client, DOCKER_HOST=f"tcp://127.0.0.1:{proxy.port}") as (
            svc,
            api,
            make_job,
        ):
            job = make_job()
            assert api.read(job["id"], "README.md")["content"].startswith("# fixture")
            proxy.cut()
            api.error(api.tool(job["id"], "read_file", path="README.md"), 503, "docker_unavailable")
            api.error(make_job.raw(make_job.body()), 503, "docker_unavailable")
            ready = requests.get(f"{svc.url}/readyz", timeout=30)
            assert ready.status_code == 503 and ready.json()["checks"]["docker"] == "unreachable"
            assert api.job(job["id"])["status"] == "ready"  # what the store knows; the box still runs
            time.sleep(1.5)  # a few reaper passes against a dead engine change nothing
            assert api.job(job["id"])["status"] == "ready"

            proxy.up()
            wait_for(lambda: requests.get(f"{svc.url}/readyz", timeout=30).status_code == 200, what="/readyz")
            assert api.read(job["id"], "README.md")["content"].startswith("# fixture")
            assert make_job()["status"] == "ready"
    finally:
        proxy.cut()


# --- the job cap ---------------------------------------------------------------------------------


def test_job_cap_is_429_with_retry_after_and_audited(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client, DOCKYARD_MAX_JOBS="1") as (_svc, api, make_job):
        first = make_job()
        r = make_job.raw(make_job.body())
        err = api.error(r, 429, "too_many_jobs")
        assert int(r.headers["Retry-After"]) > 0
        assert err["details"] == {"live_jobs": 1, "max_jobs": 1}
        refused = audit(api, action="job.create")
        assert [x["outcome"] for x in refused if x["job_id"] is None] == ["too_many_jobs"]
        assert api.delete(f"/v1/jobs/{first['id']}").status_code == 204
        assert make_job()["status"] == "ready"


def test_service_process_answers_sigterm_quickly_when_idle(tmp_path, fixture_repo, docker_client):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, _api, _make_job):
        assert svc.proc is not None
        proc = svc.proc
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        svc.proc = None
        assert time.monotonic() - t0 < 5
