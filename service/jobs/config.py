"""The running config — `images.toml` with the content-hash tags it resolves to, and the API
tokens (`DOCKYARD_API_TOKENS` plus `DOCKYARD_API_TOKENS_FILE`) — reloaded whole (POST
/v1/config/reload, SIGHUP): on any mistake in either, the running one stays."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from service.audit import Actor, AuditEntry
from service.errors import InvalidRequest
from service.images import ResolvedImage, resolve_images
from service.logging import get_logger
from service.settings import (
    ConfigError,
    ImagesConfig,
    Settings,
    TokenInfo,
    load_images_config,
    token_fingerprint,
)
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
        # Called with the re-read tokens after a good reload (the HTTP edge's token table).
        self.on_tokens: list[Callable[[dict[str, TokenInfo]], None]] = []

    async def reload(self, actor: Actor) -> ImageState:
        """Re-read the ops file and the tokens; on any mistake keep the running config (images
        and tokens alike) and raise a clear error."""
        path = self.settings.images_config

        def load() -> tuple[ImageState, dict[str, TokenInfo]]:
            cfg = load_images_config(path)
            tokens = self.settings.tokens()  # DOCKYARD_API_TOKENS_FILE is read again
            return ImageState(cfg, resolve_images(cfg, path, self.settings)), tokens

        try:
            state, tokens = await asyncio.to_thread(load)
        except ConfigError as e:
            await self.store.audit(
                AuditEntry(actor=actor, action="config.reload", outcome="error", details={"error": str(e)})
            )
            raise InvalidRequest(
                f"config not reloaded, the running one stays: {e}", {"path": str(path)}
            ) from e
        self.state = state
        for hook in self.on_tokens:
            hook(tokens)
        await self.store.audit(
            AuditEntry(
                actor=actor,
                action="config.reload",
                outcome="ok",
                details={
                    "path": str(path),
                    "images": {n: i.tag for n, i in state.images.items()},
                    # fingerprints only, never a token
                    "tokens": sorted(f"{i.role}-{token_fingerprint(t)}" for t, i in tokens.items()),
                },
            )
        )
        log.info("config_reloaded", path=str(path), tokens=len(tokens))
        return state
