"""The ops file shows every key: sandbox-images/images.toml holds each key the loader accepts (and
`GET /v1/config` reports, which is the loaded model's dump) — set, or commented out as
`# key = value  # what it does` — and every commented default is the model's real default.

The commented lines are uncommented in memory, the result is parsed and validated like the real
file, and its keys are compared with the model's, per kind of table (`languages.*.linters.*`).
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from service.settings import REPO_ROOT, ImagesConfig, load_images_config

IMAGES_TOML = REPO_ROOT / "sandbox-images" / "images.toml"
COMMENTED_KEY = re.compile(r"^# ([a-z_]+) = (.+)$")
HEADER = re.compile(r"^\[([^\]]+)\]")


def _submodel(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model class, is a name → model map) of a field's annotation, or (None, False) for a leaf."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None):
                return _submodel(arg)
    if origin is dict and len(args) == 2:
        inner, _ = _submodel(args[1])
        if inner is not None:
            return inner, True
    return None, False


def model_paths(cls: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key path the model accepts; a map level of user-chosen names is `*`."""
    out: set[str] = set()
    for name, field in cls.model_fields.items():
        path = prefix + name
        out.add(path)
        sub, is_map = _submodel(field.annotation)
        if sub is not None:
            out |= model_paths(sub, path + (".*." if is_map else "."))
    return out


def doc_paths(doc: dict[str, Any], cls: type[BaseModel], prefix: str = "") -> set[str]:
    """The key paths present in a parsed TOML document (or a model dump), in model_paths' terms."""
    out: set[str] = set()
    for key, value in doc.items():
        path = prefix + key
        out.add(path)
        field = cls.model_fields.get(key)
        sub, is_map = _submodel(field.annotation) if field else (None, False)
        if sub is None or value is None:
            continue
        for item in value.values() if is_map else [value]:
            out |= doc_paths(item, sub, path + (".*." if is_map else "."))
    return out


def table_model(header: str) -> type[BaseModel]:
    """The model class a `[a.b.c]` table header stands for."""
    cls: type[BaseModel] = ImagesConfig
    parts = header.split(".")
    i = 0
    while i < len(parts):
        sub, is_map = _submodel(cls.model_fields[parts[i]].annotation)
        assert sub is not None, f"[{header}]: {parts[i]} is not a table"
        cls = sub
        i += 2 if is_map else 1
    return cls


def commented_keys(text: str) -> list[tuple[str, str, str]]:
    """(table header, key, `key = value` line) of every commented-out key line."""
    out = []
    header = ""
    for line in text.splitlines():
        if m := HEADER.match(line):
            header = m.group(1).strip()
        elif m := COMMENTED_KEY.match(line):
            out.append((header, m.group(1), line[2:]))
    return out


def uncommented(text: str) -> str:
    return "\n".join(line[2:] if COMMENTED_KEY.match(line) else line for line in text.splitlines())


def test_every_key_the_loader_accepts_is_in_images_toml() -> None:
    text = IMAGES_TOML.read_text()
    doc = tomllib.loads(uncommented(text))  # a key both set and commented in one table fails here
    ImagesConfig.model_validate(doc)  # the commented examples are valid values
    accepted = model_paths(ImagesConfig)
    shown = doc_paths(doc, ImagesConfig)
    assert sorted(accepted - shown) == [], "keys the loader accepts that images.toml does not show"
    assert sorted(shown - accepted) == [], "keys in images.toml the loader does not know"


def test_every_key_get_v1_config_reports_is_in_images_toml() -> None:
    # GET /v1/config's `config` is the loaded file's model_dump(mode="json") (service/api/health.py).
    reported = load_images_config(IMAGES_TOML).model_dump(mode="json")
    shown = doc_paths(tomllib.loads(uncommented(IMAGES_TOML.read_text())), ImagesConfig)
    assert sorted(doc_paths(reported, ImagesConfig) - shown) == []


def test_commented_defaults_are_the_real_defaults() -> None:
    checked = 0
    for header, key, line in commented_keys(IMAGES_TOML.read_text()):
        cls = table_model(header)
        assert key in cls.model_fields, f"[{header}] {key}: not a key of {cls.__name__}"
        field = cls.model_fields[key]
        if field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        elif field.default is PydanticUndefined:
            raise AssertionError(f"[{header}] {key} is required: set it, do not comment it out")
        else:
            default = field.default
        if default is None:
            continue  # unset by default: the commented value is an example
        value = tomllib.loads(line)[key]
        assert value == default, f"[{header}] {key}: images.toml says {value!r}, the default is {default!r}"
        checked += 1
    assert checked >= 5


def test_the_check_catches_a_missing_key(tmp_path: Path) -> None:
    text = IMAGES_TOML.read_text().replace("# lint_capture_mb = 32", "#")
    shown = doc_paths(tomllib.loads(uncommented(text)), ImagesConfig)
    assert model_paths(ImagesConfig) - shown == {"limits.lint_capture_mb"}


def test_images_toml_is_in_no_image_hash() -> None:
    """Comments here never rebuild an image: tags hash only the image folders, not this file."""
    cfg = load_images_config(IMAGES_TOML)
    for name, spec in cfg.images.items():
        context = (IMAGES_TOML.parent / spec.context).resolve()
        toml = IMAGES_TOML.resolve()
        assert toml.parent != context and toml not in context.rglob("*"), name
