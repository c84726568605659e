"""Timing profiles: when each token of a reply is due.

A profile is data (:data:`PROFILES`), so documentation and notebooks can list
it.  :meth:`Profile.offsets` gives each token's due time in milliseconds after
the request arrived; the doors sleep until ``t0 + offset`` on an absolute
clock, so a slow write never makes later tokens drift.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["PROFILES", "Jitter", "Profile"]


@dataclass(frozen=True, slots=True)
class Jitter:
    """Irregular gaps: mostly around ``gap_ms``, sometimes a pause, sometimes a burst."""

    gap_low_ms: float
    gap_high_ms: float
    pause_probability: float
    pause_low_ms: float
    pause_high_ms: float
    burst_probability: float
    burst_min_tokens: int
    burst_max_tokens: int
    burst_gap_ms: float


@dataclass(frozen=True, slots=True)
class Profile:
    """How fast a demo model answers.

    ``ttft_ms`` is the time to the first token, ``gap_ms`` the time between
    tokens (0: as fast as the event loop allows, yielding between tokens).
    With ``jitter`` the gaps are drawn from a seeded generator instead and
    ``gap_ms`` is only their approximate mean.
    """

    name: str
    description: str
    ttft_ms: float
    gap_ms: float
    jitter: Jitter | None = None

    @property
    def tokens_per_s(self) -> float | None:
        """Mean rate, ``None`` for "as fast as possible"."""
        return 1000.0 / self.gap_ms if self.gap_ms > 0 else None

    def offsets(self, seed: int) -> Iterator[float]:
        """Due time of token 0, 1, 2, … in ms after the request (endless, lazy)."""
        if self.jitter is None:
            i = 0
            while True:  # endless by design; the consumer stops after max_tokens
                yield self.ttft_ms + i * self.gap_ms
                i += 1
        else:
            yield from _jittered(self.ttft_ms, self.jitter, random.Random(seed))


def _jittered(ttft_ms: float, jitter: Jitter, rng: random.Random) -> Iterator[float]:
    due = ttft_ms
    burst_left = 0
    while True:  # endless by design; the consumer stops after max_tokens
        yield due
        if burst_left > 0:
            burst_left -= 1
            due += rng.uniform(0.0, jitter.burst_gap_ms)
        elif rng.random() < jitter.burst_probability:
            burst_left = rng.randint(jitter.burst_min_tokens, jitter.burst_max_tokens) - 1
            due += rng.uniform(0.0, jitter.burst_gap_ms)
        elif rng.random() < jitter.pause_probability:
            due += rng.uniform(jitter.pause_low_ms, jitter.pause_high_ms)
        else:
            due += rng.uniform(jitter.gap_low_ms, jitter.gap_high_ms)


PROFILES: Final[Mapping[str, Profile]] = MappingProxyType(
    {
        p.name: p
        for p in (
            Profile("instant", "no delay at all (yields to the event loop between tokens)", 0, 0),
            Profile("steady", "about 50 tokens/s after 250 ms, like a hosted API", 250, 20),
            Profile(
                "slow", "about 8 tokens/s after 600 ms, like a local model on a laptop", 600, 125
            ),
            Profile(
                "jittery",
                "about 30 tokens/s on average, irregular: pauses of a few hundred ms and bursts",
                350,
                1000 / 30,
                Jitter(
                    gap_low_ms=15,
                    gap_high_ms=45,
                    pause_probability=0.04,
                    pause_low_ms=150,
                    pause_high_ms=450,
                    burst_probability=0.05,
                    burst_min_tokens=3,
                    burst_max_tokens=6,
                    burst_gap_ms=2,
                ),
            ),
            Profile("fast", "200 tokens/s after 20 ms, for benchmarks", 20, 5),
        )
    }
)
"""Every profile by name."""
