"""The running image config (`images.toml` and the content-hash tags it resolves to), reloaded
whole: on any mistake the running one stays."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from service.audit import Actor, AuditEntry
from service.errors import InvalidRequest
from service.images import ResolvedImage, resolve_images
from service.logging import get_logger
from service.settings import ConfigError, ImagesConfig, Settings, load_images_config
from service.store import Store

log = get_logger(__name__)


@dataclass
class ImageState:
    """The ops config and the content-hash tags it resolves to (swapped whole on reload)."""

    config: ImagesConfig
    images: dict[str, ResolvedImage]


class ImageConfig:
    """Holds the ImageState every job reads (`state`), swapped by `reload`."""

    def __init__(self, settings: Settings, store: Store, state: ImageState):
        self.settings = settings
        self.store = store
        self.state = state

    async def reload(self, actor: Actor) -> ImageState:
        """Re-read the ops file; on any mistake keep the running config and raise a clear error."""
        path = self.settings.images_config

        def load() -> ImageState:
            cfg = load_images_config(path)
            return ImageState(cfg, resolve_images(cfg, path, self.settings))

        try:
            state = await asyncio.to_thread(load)
        except ConfigError as e:
            await self.store.audit(
                AuditEntry(actor=actor, action="config.reload", outcome="error", details={"error": str(e)})
            )
            raise InvalidRequest(
                f"config not reloaded, the running one stays: {e}", {"path": str(path)}
            ) from e
        self.state = state
        await self.store.audit(
            AuditEntry(
                actor=actor,
                action="config.reload",
                outcome="ok",
                details={"path": str(path), "images": {n: i.tag for n, i in state.images.items()}},
            )
        )
        log.info("config_reloaded", path=str(path))
        return state
