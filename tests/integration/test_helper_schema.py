"""The channel's one schema: the helper's own structs (its `schema` command, Go reflection) agree
field by field with the service's op models (service/tools/ops.py)."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from service.tools import ops

pytestmark = pytest.mark.docker


def _kind(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _kind(inner) + "|null"
    if origin is list:
        return "array"
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "object"
    if origin is typing.Literal:
        return _kind(type(args[0]))
    return {str: "string", int: "integer", bool: "boolean"}[annotation]


def _fields(model: type[BaseModel]) -> dict[str, str]:
    return {(f.alias or name): _kind(f.annotation) for name, f in model.model_fields.items()}


def test_the_helper_and_the_service_declare_the_same_ops(api, docker_client):
    images = {i["name"]: i for i in api.get("/v1/images").json()["images"]}
    tag = images["base"]["tag"]
    out = docker_client.containers.run(tag, ["dockyard-tool", "schema"], remove=True, network_mode="none")
    helper = json.loads(out)["ops"]
    assert set(helper) == set(ops.OPS) | set(ops.CHANNEL_OPS)
    for name, (args, result) in ops.OPS.items():
        assert helper[name]["args"] == _fields(args), name
        assert helper[name]["result"] == _fields(result), name
