"""Console sessions: a browser cannot send a bearer header from a link, so the token is given once
to the login form and the browser keeps only an opaque session id (an HttpOnly, SameSite=Strict
cookie scoped to /console). The id maps, in this process's memory, to the token's actor — never to
the token — until it expires or the auditor logs out; a restart ends every session."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from service.audit import Actor

PREFIX = "/console"
COOKIE = "dockyard_console"


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@dataclass(frozen=True)
class Session:
    actor: Actor
    expires_at: float  # on the table's clock (time.monotonic)


def _key(session_id: str) -> str:
    # Only a digest of the id is held: a dump of this process's memory names no usable cookie.
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Session ids → actors, oldest first; at most `max_sessions` (the oldest go first)."""

    def __init__(self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._by_key: OrderedDict[str, Session] = OrderedDict()

    def open(self, actor: Actor) -> str:
        self._expire()
        while len(self._by_key) >= self.max_sessions:
            self._by_key.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._by_key[_key(session_id)] = Session(actor, self._clock() + self.ttl_s)
        return session_id

    def actor(self, session_id: str | None) -> Actor | None:
        if not session_id:
            return None
        key = _key(session_id)
        session = self._by_key.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._by_key[key]
            return None
        return session.actor

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_key.pop(_key(session_id), None)

    def keep_only(self, actors: set[Actor]) -> None:
        """End the sessions of actors no longer configured (a token removed by a reload)."""
        for key in [k for k, s in self._by_key.items() if s.actor not in actors]:
            del self._by_key[key]

    def __len__(self) -> int:
        return len(self._by_key)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._by_key.items() if s.expires_at <= now]:
            del self._by_key[key]
