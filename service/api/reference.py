"""docs/API.md from the OpenAPI document: per tag, each operation with its method, path, roles,
summary and description, parameters, request and answer fields (types, descriptions), error
codes per status and examples. `dockyard openapi --markdown` prints it; a unit test fails when
the file in the repository is not what this makes of the current document."""

from __future__ import annotations

import json
from typing import Any

REGENERATE = "python -m service openapi --markdown > docs/API.md"


def markdown(doc: dict[str, Any]) -> str:
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    out: list[str] = [
        f"# {doc['info']['title']}",
        "",
        f"<!-- generated from /openapi.json; do not edit: `{REGENERATE}` -->",
        "",
        doc["info"].get("description", ""),
        "",
        "The service serves this as OpenAPI 3.1 at `GET /openapi.json` and renders it at `GET /docs`.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((method.upper(), path, op))
    tags = doc.get("tags", [])
    out += ["## Contents", ""]
    for tag in tags:
        out.append(f"- [{tag['name']}](#{_anchor(tag['name'])})")
        out += [f"  - `{m} {p}` — {op['summary']}" for m, p, op in by_tag.get(tag["name"], [])]
    out.append("")
    for tag in tags:
        out += [f"## {tag['name']}", "", tag.get("description", ""), ""]
        for method, path, op in by_tag.get(tag["name"], []):
            out += _operation(method, path, op, schemas)
    out += _events(doc, schemas)
    out += ["## Errors", "", 'Every error answer is `{"error": {"code", "message", "details"}}`.', ""]
    out += ["| status | codes |", "|---|---|"]
    for name, schema in sorted(schemas.items()):
        if name.startswith("Error") and name[5:].isdigit():
            codes = schema["properties"]["error"]["properties"]["code"]["enum"]
            out.append(f"| {name[5:]} | {', '.join(f'`{c}`' for c in codes)} |")
    out.append("")
    out += ["## Schemas", ""]
    for name, schema in sorted(schemas.items()):
        if name.startswith("Error") and name[5:].isdigit():
            continue
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [_one_line(schema["description"]), ""]
        out += _fields(schema, schemas)
    return "\n".join(out).rstrip() + "\n"


def _operation(method: str, path: str, op: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    out = [f"### `{method} {path}`", "", f"**{op['summary']}**", "", op.get("description", ""), ""]
    params = op.get("parameters", [])
    if params:
        out += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for p in params:
            desc = p.get("description") or p["schema"].get("description", "")
            out.append(
                f"| `{p['name']}` | {p['in']} | {_type(p['schema'])} | {'yes' if p['required'] else 'no'} "
                f"| {_cell(desc)} |"
            )
        out.append("")
    body = op.get("requestBody")
    if body is not None:
        media = body["content"]["application/json"]
        name = _ref_name(media["schema"])
        empty = "" if body["required"] else " (may be empty)"
        out += [f"Request body: [{name}](#{_anchor(name)}){empty}", ""]
        out += _fields(schemas[name], schemas)
        if "example" in media:
            out += ["```json", json.dumps(media["example"], indent=2), "```", ""]
    for status, response in op["responses"].items():
        if int(status) >= 400:
            continue
        content = response.get("content", {})
        if not content:
            out += [f"Answer `{status}`: {response['description']}", ""]
        for media_type, media in content.items():
            schema = media.get("schema")
            if schema is None:
                out += [f"Answer `{status}` (`{media_type}`): {response['description']}", ""]
            elif "$ref" in schema:
                name = _ref_name(schema)
                out += [f"Answer `{status}` (`{media_type}`): [{name}](#{_anchor(name)})", ""]
                if "example" in media:
                    out += ["```json", json.dumps(media["example"], indent=2), "```", ""]
            else:
                text = f"{response['description']} See [Events](#events)."
                out += [f"Answer `{status}` (`{media_type}`): {text}", ""]
    errors = [s for s in op["responses"] if int(s) >= 400]
    if errors:
        out += [f"Errors: {', '.join(f'`{s}`' for s in errors)} (codes: [Errors](#errors))", ""]
    return out


def _events(doc: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    frames: list[dict[str, Any]] = []
    for ops in doc["paths"].values():
        for op in ops.values():
            media = op["responses"].get("200", {}).get("content", {}).get("text/event-stream")
            if media is not None:
                frames = media["schema"]["oneOf"]
    if not frames:
        return []
    intro = (
        "`GET /v1/jobs/{id}/events`: each event's `event` name, and the model of the `data` inside "
        "its JSON `data` (the frame is a [JobEvent](#jobevent) unless said otherwise)."
    )
    out = ["## Events", "", intro, ""]
    out += ["| event | data | when |", "|---|---|---|"]
    for frame in frames:
        content = frame["properties"]["data"]["contentSchema"]
        parts = content["properties"] if "properties" in content else content["allOf"][1]["properties"]
        name = _ref_name(parts["data"])
        note = "" if "id" in frame["properties"] else " No `id`; the frame is `{job_id, type, data}`."
        when = _cell(frame["description"]) + note
        out.append(f"| `{frame['title']}` | [{name}](#{_anchor(name)}) | {when} |")
    return [*out, ""]


def _fields(schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    props = schema.get("properties", {})
    if not props:
        return [f"Type: {_type(schema)}", ""]
    required = set(schema.get("required", []))
    out = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in props.items():
        desc = prop.get("description", "")
        if "default" in prop and name not in required:
            desc = f"{desc} (default: `{json.dumps(prop['default'])}`)".strip()
        out.append(f"| `{name}` | {_type(prop)} | {'yes' if name in required else 'no'} | {_cell(desc)} |")
    return [*out, ""]


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = _ref_name(schema)
        return f"[{name}](#{_anchor(name)})"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " \\| ".join(_type(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"list[{_type(schema.get('items', {}))}]"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return f"map[string, {_type(extra)}]" if isinstance(extra, dict) else "object"
    if kind == "string" and "format" in schema:
        return f"string ({schema['format']})"
    return str(kind or "any")


def _ref_name(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def _anchor(name: str) -> str:
    return "".join(c for c in name.lower().replace(" ", "-") if c.isalnum() or c in "-_")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")
