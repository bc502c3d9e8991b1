"""What a tool hands the job service: one helper call (op, arguments, body) and what to audit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

HELPER = "dockyard-tool"  # the in-box helper's program name (audit argv: `dockyard-tool OP PATH …`)


class Flags(TypedDict):
    """A call killed for time or memory is a result with these flags, not an error."""

    timed_out: bool
    oom_killed: bool


@dataclass(frozen=True)
class Caps:
    """The service's byte caps a tool's call is built with (from Settings)."""

    read: int
    write: int
    output: int
    max_entries: int = 5000


@dataclass(frozen=True)
class HelperCall:
    """One request to the helper. `path` (and `extra_argv`) are what the audit record names: never
    file contents. `details` are extra audit details (a move's destination)."""

    op: str
    args: dict[str, Any]
    body: bytes = b""
    path: str | None = None
    extra_argv: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def argv(self) -> list[str]:
        return [HELPER, self.op, *([self.path] if self.path is not None else []), *self.extra_argv]


@dataclass(frozen=True)
class ExecCall:
    """A plain command in the job's box (not a helper op): the argv is audited as is."""

    action: str
    argv: list[str]
    stdin: bytes | None = None
