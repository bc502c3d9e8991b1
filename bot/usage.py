"""Token counts and their cost, per model call, per round and in total."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# USD per million tokens: (input, output). Cache writes cost 1.25x input, cache reads 0.1x input.
# Keep in step with the provider's price list; a model missing here shows its cost as unknown.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-5-5": (5.0, 25.0),
    "claude-opus-5": (5.0, 25.0),
    "claude-opus-4-8": (5.0, 25.0),
    "claude-opus-4-7": (5.0, 25.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-sonnet-5-5": (3.0, 15.0),
    "claude-sonnet-5": (3.0, 15.0),
    "claude-sonnet-4-6": (3.0, 15.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-5-5": (1.0, 5.0),
    "claude-haiku-4-5": (1.0, 5.0),
}
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


def price_of(model: str) -> tuple[float, float] | None:
    """The (input, output) price of a model id; dated ids (`claude-haiku-4-5-20251001`) match their
    family's entry."""
    if model in PRICES:
        return PRICES[model]
    best = max((k for k in PRICES if model.startswith(k + "-")), key=len, default=None)
    return PRICES[best] if best else None


@dataclass
class Usage:
    """Token counts of one or more model calls of one model."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    calls: int = 0

    def add_response(self, usage: Any) -> None:
        """Add the `usage` object of a Messages API answer."""
        self.input_tokens += int(getattr(usage, "input_tokens", 0) or 0)
        self.output_tokens += int(getattr(usage, "output_tokens", 0) or 0)
        self.cache_write_tokens += int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        self.cache_read_tokens += int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        self.calls += 1

    def __iadd__(self, other: Usage) -> Usage:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.calls += other.calls
        return self

    def copy(self) -> Usage:
        return replace(self)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    @property
    def cost_usd(self) -> float | None:
        price = price_of(self.model)
        if price is None:
            return None
        pin, pout = price
        return (
            self.input_tokens * pin
            + self.cache_write_tokens * pin * CACHE_WRITE_FACTOR
            + self.cache_read_tokens * pin * CACHE_READ_FACTOR
            + self.output_tokens * pout
        ) / 1_000_000

    def describe(self) -> str:
        """`12,345 in / 678 out tokens, $0.0472`."""
        cached = ""
        if self.cache_read_tokens or self.cache_write_tokens:
            cached = f" (+{self.cache_read_tokens:,} cache read, {self.cache_write_tokens:,} cache write)"
        tokens = f"{self.input_tokens:,} in / {self.output_tokens:,} out tokens"
        return f"{tokens}{cached}, {format_cost(self.cost_usd)}"


def format_cost(cost: float | None) -> str:
    return "cost unknown" if cost is None else f"${cost:.4f}"


class Ledger:
    """Usage per round (round 0 is the set-up before the first round) and in total."""

    def __init__(self, model: str):
        self.model = model
        self.current_round = 0
        self.by_round: dict[int, Usage] = {}

    def add(self, usage: Any) -> None:
        self.by_round.setdefault(self.current_round, Usage(self.model)).add_response(usage)

    def round(self, number: int | None = None) -> Usage:
        n = self.current_round if number is None else number
        return self.by_round.get(n, Usage(self.model)).copy()

    def total(self) -> Usage:
        total = Usage(self.model)
        for usage in self.by_round.values():
            total += usage
        return total
