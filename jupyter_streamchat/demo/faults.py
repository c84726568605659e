"""Fault injection, chosen per request through the model name.

The model field is the one thing every protocol carries, so it holds the
whole choice: ``PROFILE[:FAULT[@N]]``, e.g. ``steady``, ``slow:drop@5``,
``instant:malformed@3``, ``steady:http429``, ``:http500@2`` (default profile).

=============  ===========================================================
``http500``    the request fails like a server error (HTTP 500, gRPC
               ``INTERNAL``, WebSocket error frame then close)
``http429``    the request is rate limited (HTTP 429 + ``Retry-After: 1``,
               gRPC ``RESOURCE_EXHAUSTED``, WebSocket ``rate_limited``)
               For both: ``@N`` fails only the first N attempts of the same
               request (model string + messages), without ``@N`` every one.
``stall@N``    after N tokens nothing more is sent; the connection stays
               open until the client goes away
``drop@N``     after N tokens the connection is cut without a final frame
``malformed@N`` after N tokens a frame that is not valid for the protocol
=============  ===========================================================

For the stream faults a missing ``@N`` means ``@0``; when the reply is
shorter than N tokens the fault takes the place of the final frame.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, get_args

__all__ = [
    "FAULTS",
    "MAX_FAULT_COUNT",
    "AttemptLedger",
    "Fault",
    "ModelSpec",
    "ModelSpecError",
    "parse_model",
    "valid_choices",
]

Fault: TypeAlias = Literal["http500", "http429", "stall", "drop", "malformed"]
FAULTS: Final[tuple[Fault, ...]] = get_args(Fault)
HTTP_FAULTS: Final[frozenset[Fault]] = frozenset({"http500", "http429"})
MAX_FAULT_COUNT: Final = 1_000_000
"""Upper bound of ``@N``: keeps a typo from meaning "forever"."""

_GRAMMAR: Final = re.compile(r"^(?P<profile>[^:@]*)(?::(?P<fault>[^:@]*)(?:@(?P<count>[^:@]*))?)?$")


class ModelSpecError(ValueError):
    """A model name that is not ``PROFILE[:FAULT[@N]]``; the message lists the valid ones."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed model name.

    ``count`` is ``N`` as written (``None`` when absent); see :attr:`fail_after`
    and :attr:`failing_attempts` for what it means for each fault.
    """

    profile: str
    fault: Fault | None = None
    count: int | None = None

    @property
    def fail_after(self) -> int:
        """For a stream fault: how many tokens come before it."""
        return self.count or 0

    @property
    def failing_attempts(self) -> int | None:
        """For ``http500``/``http429``: attempts that fail (``None``: all of them)."""
        return self.count

    def __str__(self) -> str:
        if self.fault is None:
            return self.profile
        suffix = "" if self.count is None else f"@{self.count}"
        return f"{self.profile}:{self.fault}{suffix}"


def valid_choices(profiles: Collection[str]) -> str:
    """The sentence every model-name error ends with."""
    return (
        f"valid profiles: {', '.join(sorted(profiles))}; "
        "valid faults: http500[@N], http429[@N], stall@N, drop@N, malformed@N "
        "(model is PROFILE[:FAULT[@N]], e.g. 'slow:drop@5')"
    )


def parse_model(model: str, profiles: Collection[str], default_profile: str) -> ModelSpec:
    """Parse ``PROFILE[:FAULT[@N]]``; an empty profile means ``default_profile``.

    Raises :class:`ModelSpecError` naming the bad part and listing valid ones.
    """
    match = _GRAMMAR.match(model)
    if match is None:
        raise ModelSpecError(
            f"model {model!r} is not PROFILE[:FAULT[@N]]; {valid_choices(profiles)}"
        )
    profile = match["profile"] or default_profile
    if profile not in profiles:
        raise ModelSpecError(
            f"unknown profile {profile!r} in model {model!r}; {valid_choices(profiles)}"
        )
    fault_name, count_text = match["fault"], match["count"]
    if fault_name is None:
        return ModelSpec(profile)
    fault = next((f for f in FAULTS if f == fault_name), None)
    if fault is None:
        raise ModelSpecError(
            f"unknown fault {fault_name!r} in model {model!r}; {valid_choices(profiles)}"
        )
    if count_text is None:
        return ModelSpec(profile, fault)
    if not count_text.isascii() or not count_text.isdigit():
        raise ModelSpecError(
            f"fault count {count_text!r} in model {model!r} is not a whole number; "
            f"{valid_choices(profiles)}"
        )
    count = int(count_text)
    if count > MAX_FAULT_COUNT:
        raise ModelSpecError(
            f"fault count {count} in model {model!r} is over the limit of {MAX_FAULT_COUNT}"
        )
    return ModelSpec(profile, fault, count)


class AttemptLedger:
    """Counts attempts of the same request, for ``http500@N`` / ``http429@N``.

    Keys are digests of (door, model string, messages); the oldest are
    forgotten beyond ``max_keys`` so memory stays bounded.
    """

    def __init__(self, max_keys: int = 10_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_keys = max_keys
        self._seen: OrderedDict[bytes, int] = OrderedDict()

    @staticmethod
    def key(door: str, model: str, messages: Sequence[tuple[str, str]]) -> bytes:
        blob = json.dumps([door, model, [list(m) for m in messages]], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).digest()

    def attempt(self, key: bytes) -> int:
        """Record one more attempt; returns its number, 1 for the first."""
        n = self._seen.pop(key, 0) + 1
        self._seen[key] = n
        while len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return n

    def should_fail(
        self, door: str, spec: ModelSpec, model: str, messages: Sequence[tuple[str, str]]
    ) -> bool:
        """Whether this attempt of an HTTP-style fault fails (records the attempt)."""
        if spec.fault not in HTTP_FAULTS:
            return False
        limit = spec.failing_attempts
        if limit is None:
            return True
        return self.attempt(self.key(door, model, messages)) <= limit
