"""Service routes: liveness, readiness, the OpenAPI document, the image config."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from service.api.routing import actor, answer
from service.app_keys import BACKEND, JOBS
from service.errors import FAILURES
from service.models import ConfigView, Health, ImageInfo, ImagesResult, LanguageInfo, LinterInfo
from service.settings import Settings


async def healthz(request: web.Request) -> web.Response:
    return answer(Health(status="ok"))


async def _present(request: web.Request) -> dict[str, bool] | None:
    """Each image tag → built?; None when the engine does not answer."""
    backend = request.app[BACKEND]
    images = request.app[JOBS].images.images
    try:
        await asyncio.wait_for(backend.ping(), timeout=5)
        tags = [img.tag for img in images.values()]
        found = await asyncio.gather(*(backend.image_present(t) for t in tags))
    except (*FAILURES, TimeoutError):
        return None
    return dict(zip(tags, found, strict=True))


def _audit_state(request: web.Request) -> str:
    if request.app[JOBS].store.keys is not None:
        return "keyed"
    return "unkeyed: records are hash-chained but not authenticated (set DOCKYARD_AUDIT_KEY_FILE)"


async def readyz(request: web.Request) -> web.Response:
    present = await _present(request)
    state = request.app[JOBS].images
    if present is None:
        away: dict[str, Any] = {"docker": "unreachable", "audit": _audit_state(request)}
        return answer(Health(status="unavailable", checks=away), status=503)
    missing = sorted(name for name, img in state.images.items() if not present[img.tag])
    default_image = state.config.languages[state.config.default_language].image
    ok = default_image not in missing
    checks: dict[str, Any] = {
        "docker": "ok",
        "config": "ok",
        "missing_images": missing,
        "audit": _audit_state(request),
    }
    if missing:
        checks["hint"] = "run `dockyard images build`"
    siem = request.app.get("dockyard.siem")
    if siem is not None:  # a sink behind or retrying is reported, never a reason to be unready
        checks["siem"] = siem.status()
    return answer(Health(status="ok" if ok else "unavailable", checks=checks), status=200 if ok else 503)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(request.app["dockyard.openapi"])


async def images(request: web.Request) -> web.Response:
    state = request.app[JOBS].images
    present = await _present(request) or {}
    cfg = state.config
    return answer(
        ImagesResult(
            images=[
                ImageInfo(name=i.name, tag=i.tag, present=present.get(i.tag, False))
                for i in state.images.values()
            ],
            languages=[
                LanguageInfo(
                    name=name,
                    image=state.images[spec.image].tag,
                    detect=list(spec.detect),
                    linters=[
                        LinterInfo(
                            name=lname,
                            image=state.images[linter.image or spec.image].tag,
                            command=list(linter.command),
                            parser=linter.parser,
                            files=list(linter.files),
                            enabled_by=list(linter.enabled_by),
                            default=linter.default,
                            timeout_s=linter.timeout_s,
                            runtime=linter.runtime,
                        )
                        for lname, linter in spec.linters.items()
                    ],
                )
                for name, spec in cfg.languages.items()
            ],
            default_language=cfg.default_language,
            limits=cfg.limits.model_dump(),
        )
    )


def _config_view(request: web.Request) -> ConfigView:
    state = request.app[JOBS].images
    settings = request.app[JOBS].settings
    return ConfigView(
        images_config=str(settings.images_config),
        config=state.config.model_dump(mode="json"),
        images={name: img.tag for name, img in state.images.items()},
        settings=settings.model_dump(mode="json", exclude=set(Settings.hidden_fields())),
    )


async def get_config(request: web.Request) -> web.Response:
    return answer(_config_view(request))


async def reload_config(request: web.Request) -> web.Response:
    await request.app[JOBS].reload_config(actor(request))
    return answer(_config_view(request))
