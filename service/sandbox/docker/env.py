"""Dependency environments' boxes on the Docker engine (service/env/): an internal network + the
egress proxy on it and on the default bridge, env volumes (plain local driver: a tmpfs volume
would vanish when unmounted), and a one-shot build box with input files put in before it starts.
Same hardening template as every box."""

from __future__ import annotations

import docker.errors

from service.sandbox.backend import EnvRunSpec, EnvVolume, ExecResult
from service.sandbox.docker.engine import WORKSPACE, Engine, require_image
from service.sandbox.docker.execs import run_container
from service.settings import Limits


class EnvBoxes(Engine):
    async def env_network(self, name: str, labels: dict[str, str]) -> None:
        def ensure() -> None:
            api = self.client().api
            if any(n["Name"] == name for n in api.networks(names=[name])):
                return
            try:
                api.create_network(name, driver="bridge", internal=True, labels=labels, check_duplicate=True)
            except docker.errors.APIError as e:
                if e.status_code != 409:
                    raise

        await self._run(self._control_pool, ensure)

    def _env_proxy_blocking(
        self, name: str, image: str, network: str, labels: dict[str, str], limits: Limits
    ) -> None:
        client = self.client()
        api = client.api
        try:
            info = api.inspect_container(name)
            if info["State"]["Running"]:
                return
            api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        require_image(client, image)
        subnets = [c["Subnet"] for c in api.inspect_network(network)["IPAM"]["Config"] if c.get("Subnet")]
        created = api.create_container(
            image,
            name=name,
            user="1000:1000",
            hostname="egress-proxy",
            labels=labels,
            environment={"DOCKYARD_PROXY_CLIENTS": " ".join(subnets)},  # the only clients it serves
            host_config=self._host_config(
                limits,
                volume=None,
                workspace_read_only=True,
                nofile=1024,
                fsize_bytes=16 * 1024 * 1024,
                tmp_mb=16,
                log_max_mb=5,
                runtime=None,
                network=network,
            ),
        )
        try:
            api.connect_container_to_network(created["Id"], "bridge")
            api.start(created["Id"])
        except BaseException:
            api.remove_container(created["Id"], force=True)
            raise

    async def env_proxy(
        self, name: str, image: str, network: str, labels: dict[str, str], limits: Limits
    ) -> None:
        await self._run(self._control_pool, self._env_proxy_blocking, name, image, network, labels, limits)

    async def env_volume_create(self, name: str, labels: dict[str, str]) -> None:
        await self._run(
            self._control_pool, lambda: self.client().volumes.create(name=name, driver="local", labels=labels)
        )

    async def env_volume_remove(self, name: str) -> None:
        await self._run(self._control_pool, self._destroy_blocking, None, name)

    async def env_volumes(self, label: str) -> list[EnvVolume]:
        def fetch() -> list[EnvVolume]:
            found = self.client().api.volumes(filters={"label": label}).get("Volumes") or []
            return [EnvVolume(name=v["Name"], labels=dict(v.get("Labels") or {})) for v in found]

        return await self._run(self._control_pool, fetch)

    def _env_run_blocking(self, spec: EnvRunSpec) -> ExecResult:
        client = self.client()
        require_image(client, spec.image)
        created = client.api.create_container(
            spec.image,
            command=spec.argv,
            name=spec.name,
            user=spec.user,
            working_dir=WORKSPACE,
            hostname="sandbox",
            labels=spec.labels,
            environment=spec.env,
            network_disabled=spec.network == "none",
            host_config=self._host_config(
                spec.limits,
                volume=spec.workspace_volume,
                workspace_read_only=False,
                nofile=spec.nofile,
                fsize_bytes=spec.limits.disk_mb * 1024 * 1024,
                tmp_mb=spec.tmp_mb,
                log_max_mb=1,
                runtime=None,
                extra_mounts=spec.mounts,
                network=spec.network,
            ),
        )
        container_id = created["Id"]
        try:
            client.api.put_archive(container_id, WORKSPACE, spec.inputs)
            return run_container(
                client.api,
                container_id,
                spec.argv,
                timeout_s=spec.timeout_s,
                output_cap=spec.output_cap,
                oom_since=self._oom_since(container_id),
            )
        finally:
            try:
                client.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass

    async def env_run(self, spec: EnvRunSpec) -> ExecResult:
        return await self._run(self._run_pool, self._env_run_blocking, spec)

    async def env_cleanup(self, label: str, *, network: str | None) -> None:
        def clean() -> None:
            api = self.client().api
            for c in api.containers(all=True, filters={"label": label}):
                try:
                    api.remove_container(c["Id"], force=True)
                except docker.errors.NotFound:
                    pass
            if network is not None:
                for n in api.networks(names=[network]):
                    if n["Name"] != network:
                        continue
                    try:
                        api.remove_network(n["Id"])
                    except docker.errors.NotFound:
                        pass

        await self._run(self._control_pool, clean)
