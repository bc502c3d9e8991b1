"""Benchmark (not a test): linters through dockyard vs the same linter run natively on the host.

For ruff and eslint, on the same files: the median wall time of `POST /v1/jobs/{id}/lint` on a warm
job (its linter box running, its base results cached) against running the linter binary directly
in a checkout, as a ratio; the target figure: ruff on ONE changed file, overhead in ms (<= 150),
beside one exec round trip into a running box measured in the same run (a warm lint is two rounds
of execs: diff + files in the job's box, then the run in the linter box). Also the bare container
start cost per linter image (`docker run --rm IMAGE true`), which a reused linter box avoids.

Needs: `bash scripts/setup.sh` done; `ruff` on PATH (the test extras); node + npm for the native
eslint (installed into a temp dir from the npm registry at the image's pinned versions).
Run: `python bench/lint.py [--n 5]`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import requests

ROOT = Path(__file__).resolve().parent.parent
FILES = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@b", *args], check=True)


def make_repo(where: Path) -> Path:
    repo = where / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text("[tool.ruff.lint]\nselect = ['E', 'F', 'W']\n")
    (repo / "eslint.config.mjs").write_text(
        'import js from "@eslint/js";\nexport default [js.configs.recommended, '
        '{languageOptions: {sourceType: "module"}}];\n'
    )
    (repo / "package.json").write_text('{"type": "module"}\n')
    for i in range(FILES):
        (repo / f"mod_{i}.py").write_text(
            "import os\n" + "".join(f"def f{j}(x):\n    return x + {j}\n\n\n" for j in range(60))
        )
        (repo / f"mod_{i}.js").write_text(
            "const unused = 1;\n" + "".join(f"export function f{j}(x) {{\n  return x + {j};\n}}\n" for j in range(60))
        )
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bench")
    return repo


def eslint_versions() -> dict[str, str]:
    lock = json.loads((ROOT / "sandbox-images" / "node" / "package.json").read_text())
    deps: dict[str, str] = lock.get("dependencies", {})
    return {name: deps[name] for name in ("eslint", "@eslint/js") if name in deps}


def timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t0)
    return out


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-lint-"))
    repo = make_repo(tmp)
    changed = [f"mod_{i}" for i in range(3)]  # an agent's typical edit: a few files

    # Native eslint: the image's pinned versions, installed next to the checkout.
    versions = eslint_versions()
    subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(repo),
         *(f"{k}@{v}" for k, v in versions.items())],
        check=True, stdout=subprocess.DEVNULL,
    )

    token = secrets.token_hex(16)
    port = free_port()
    env = {**os.environ, "DOCKYARD_API_TOKENS": f"{token}:bot", "DOCKYARD_STATE_DIR": str(tmp / "state"),
           "DOCKYARD_PORT": str(port), "DOCKYARD_CLONE_FILE_ROOTS": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env,
                            stderr=(tmp / "service.log").open("wb"))
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    job_id = None
    try:
        for _ in range(100):
            try:
                if http.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"the service did not become healthy; log: {tmp / 'service.log'}")
        job = http.post(f"{base}/v1/jobs", json={"clone_url": repo.as_uri(), "language": "python"}, timeout=120).json()
        job_id = job["id"]
        for stem in changed:  # one more finding per changed file, so the base run happens too
            for ext, line in ((".py", "import sys\n"), (".js", "const alsoUnused = 2;\n")):
                path = repo / f"{stem}{ext}"
                path.write_text(line + path.read_text())
                r = http.post(f"{base}/v1/jobs/{job_id}/tools/write_file",
                              json={"path": f"{stem}{ext}", "content": path.read_text()}, timeout=60)
                assert r.status_code == 200, r.text
        py_files = [f"{s}.py" for s in changed]
        js_files = [f"{s}.js" for s in changed]

        results = {}
        for name, files, native in (
            ("ruff", py_files, ["ruff", "check", "--no-fix", "--output-format", "json", "--no-cache", *py_files]),
            ("eslint", js_files, [str(repo / "node_modules" / ".bin" / "eslint"), "--format", "json", *js_files]),
            # (dockyard's eslint prints lean JSON without sources; the native one the stock formatter)
        ):
            last: dict[str, object] = {}

            def via_api(name: str = name) -> None:
                r = http.post(f"{base}/v1/jobs/{job_id}/lint", json={"linters": [name]}, timeout=300)
                assert r.status_code == 200, r.text
                last.update(r.json()["linters"][0])

            def natively(native: list[str] = native) -> None:
                subprocess.run(native, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            via_api()  # warm-up (page cache, first container)
            natively()
            api_t, nat_t = [], []
            for _ in range(args.n):
                api_t += timed(via_api, 1)
                nat_t += timed(natively, 1)
            results[name] = (api_t, nat_t, last)

        # The target: ruff on ONE changed file, warm job (its base result cached), overhead vs native.
        one = py_files[:1]

        def one_api() -> None:
            r = http.post(f"{base}/v1/jobs/{job_id}/lint", json={"linters": ["ruff"], "paths": one}, timeout=300)
            assert r.status_code == 200, r.text

        def one_native() -> None:
            subprocess.run(["ruff", "check", "--no-fix", "--output-format", "json", "--no-cache", *one], cwd=repo,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        one_api()
        one_native()
        one_api_t, one_nat_t = [], []
        for _ in range(args.n):
            one_api_t += timed(one_api, 1)
            one_nat_t += timed(one_native, 1)

        client = docker.from_env()
        # The unit a warm lint is made of: one exec round trip into a running box (the lint is two
        # rounds: diff + files in parallel in the job's box, then the run in the linter box).
        python_tag = {i["name"]: i["tag"] for i in http.get(f"{base}/v1/images", timeout=30).json()["images"]}["python"]
        box = client.containers.run(python_tag, ["sleep", "infinity"], detach=True, network_mode="none",
                                    user="1000:1000", init=True, labels={"dockyard.bench": "1"})
        try:
            def exec_true() -> None:
                box.exec_run(["true"])
            exec_true()
            exec_rt = ms(timed(exec_true, args.n))
        finally:
            box.remove(force=True)
        start: dict[str, float] = {}
        images = {i["name"]: i["tag"] for i in http.get(f"{base}/v1/images", timeout=30).json()["images"]}
        for name in ("python", "node", "go", "shell"):
            def run(tag: str = images[name]) -> None:
                client.containers.run(tag, ["true"], remove=True, network_mode="none", read_only=True,
                                      cap_drop=["ALL"], security_opt=["no-new-privileges:true"], init=True,
                                      user="1000:1000", mem_limit="512m", tmpfs={"/tmp": "size=64m"})
            run()
            start[name] = ms(timed(run, args.n))

        print(f"files per linter run: {len(changed)} changed (each with one new finding; base run included)")
        for name, (api_t, nat_t, last) in results.items():
            print(f"{name:7} via API median {ms(api_t):7.0f} ms   natively {ms(nat_t):6.0f} ms   "
                  f"ratio {ms(api_t) / ms(nat_t):5.1f}x   (new {last['new_count']}, "
                  f"base checked {last['base_checked']}, box run {last['duration_ms']} ms)")
        overhead = ms(one_api_t) - ms(one_nat_t)
        print(f"ruff, 1 changed file, warm job: via API {ms(one_api_t):.0f} ms, natively {ms(one_nat_t):.0f} ms, "
              f"overhead {overhead:.0f} ms (target <= 150 ms); one exec round trip here: {exec_rt:.0f} ms")
        for name, t in start.items():
            print(f"container start overhead ({name:6} image, docker run --rm true): {t:6.0f} ms")
        return 0
    finally:
        if job_id:
            http.delete(f"{base}/v1/jobs/{job_id}", timeout=60)
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
