"""Benchmark (not a test): dependency environment build time and cache hit time.

For a small repository per ecosystem (Python: a requirements file of a few small pure wheels;
Node: a package.json with two small packages, no lockfile), EnvService in-process on a fresh state
dir: the cold build (policy → fetch box behind the egress proxy → install box → cache) and then
`prepare` of a second job with the same manifests (a cache hit: a key, one SQLite read, one
volume lookup), as medians. The proxy's first start is timed apart.

Needs: `bash scripts/setup.sh` done (images built, engine up) and the registries reachable.
Run: `python bench/env.py [--n 20] [--mid]` (--mid: requests + pytest + mypy + ruff; eslint 8 +
typescript, resolved without a lockfile). Leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.env.service import ENV_INSTANCE_LABEL, EnvService  # noqa: E402
from service.events import EventHub  # noqa: E402
from service.images import resolve_images  # noqa: E402
from service.jobs import ImageState, JobService  # noqa: E402
from service.sandbox.docker import DockerBackend  # noqa: E402
from service.settings import Settings, load_images_config  # noqa: E402
from service.store import Store  # noqa: E402

MID: dict[str, dict[str, str]] = {  # --mid: a mid-size repository's dev environment
    "python": {
        "requirements.txt": "requests==2.32.3\n",
        "requirements-dev.txt": "pytest==8.3.3\nmypy==1.13.0\nruff==0.7.4\ntypes-requests==2.32.0.20241016\n",
    },
    "node": {
        "package.json": json.dumps(
            {"name": "b", "version": "1.0.0", "devDependencies": {"eslint": "8.57.0", "typescript": "5.6.3"}}
        )
    },
}
REPOS: dict[str, dict[str, str]] = {
    "python": {"requirements.txt": "six==1.16.0\niniconfig==2.0.0\npackaging==24.1\n"},
    "node": {
        "package.json": json.dumps(
            {"name": "b", "version": "1.0.0", "dependencies": {"is-number": "7.0.0", "ms": "2.1.3"}}
        )
    },
}


async def main(n: int, mid: bool) -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="dockyard-bench-env-"))
    settings = Settings(state_dir=state_dir, api_tokens="t" * 20 + ":bot")
    config = load_images_config(settings.images_config)
    images = ImageState(config, resolve_images(config, settings.images_config, settings))
    instance = "dy-bench-" + secrets.token_hex(4)
    store = await Store.open(state_dir)
    backend = DockerBackend(instance=instance)
    env = EnvService(JobService(settings, store, backend, images, EventHub(store)), instance)
    await env.start()
    try:
        t0 = time.monotonic()
        await env.egress.ensure(images.images["proxy"].tag)
        print(f"egress proxy + internal network start: {(time.monotonic() - t0) * 1000:.0f} ms")
        for language, files in (MID if mid else REPOS).items():
            root = Path(tempfile.mkdtemp(prefix=f"bench-{language}-"))
            for rel, text in files.items():
                (root / rel).write_text(text)
            tag = images.images[language].tag
            t0 = time.monotonic()
            await env.prepare("cold", root, tag, language)
            state = await env.wait("cold")
            cold = (time.monotonic() - t0) * 1000
            assert state is not None
            hits = []
            for i in range(n):
                t1 = time.monotonic()
                hit = await env.prepare(f"hit{i}", root, tag, language)
                hits.append((time.monotonic() - t1) * 1000)
                assert hit.status == state.status
            print(
                f"{language:6} cold build {cold:7.0f} ms ({state.status}, {state.size_mb} MB)   "
                f"cache hit median {statistics.median(hits):6.1f} ms  p90 "
                f"{sorted(hits)[int(0.9 * (len(hits) - 1))]:6.1f} ms  (n={n})"
            )
    finally:
        await env.close()
        for v in await backend.env_volumes(f"{ENV_INSTANCE_LABEL}={instance}"):
            await backend.env_volume_remove(v.name)
        await store.close()
        await backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--mid", action="store_true", help="a mid-size dev environment instead of a tiny one")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.mid))
