"""The Docker backend, the one package that talks to a Docker engine (docker-py):

- `engine.py`  the client, bounded thread pools, engine failures → neutral errors, the hardening template
- `boxes.py`   `DockerBackend`: job boxes (create, unpack, exec, remove, list), one-shot and linter boxes
- `env.py`     dependency environments: the internal network, the egress proxy, env volumes, build boxes
- `execs.py`   the exec socket: stdin feeding, capped output, deadlines, kills, OOM
- `images.py`  building and checking the sandbox images (the CLI's `dockyard images`)
"""

from service.sandbox.docker.boxes import DockerBackend

__all__ = ["DockerBackend"]
