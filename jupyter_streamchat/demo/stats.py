"""Live counters of the demo doors, served as JSON at ``GET /stats``.

Per door:

``requests``             requests received, rejected ones included
``open_streams``         replies being generated right now
``completed``            replies that reached their final frame
``cancelled``            the client went away or cancelled before the final frame
``failed``               a stream fault (drop, malformed) or server shutdown ended it
``tokens``               tokens generated
``tokens_after_cancel``  tokens generated that found the client already gone
``faults``               injected faults by name (``http429``, ``drop``, …)

Every opened stream ends in exactly one of ``completed`` / ``cancelled`` /
``failed``.  Only the event loop thread touches these counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, get_args

from ..events import now_ms

__all__ = ["DOORS", "DemoStats", "Door", "DoorStats"]

Door: TypeAlias = Literal["openai", "ollama", "websocket", "grpc"]
DOORS: Final[tuple[Door, ...]] = get_args(Door)


@dataclass(slots=True)
class DoorStats:
    """The counters of one door."""

    requests: int = 0
    open_streams: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    tokens: int = 0
    tokens_after_cancel: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def count_fault(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "open_streams": self.open_streams,
            "completed": self.completed,
            "cancelled": self.cancelled,
            "failed": self.failed,
            "tokens": self.tokens,
            "tokens_after_cancel": self.tokens_after_cancel,
            "faults": dict(sorted(self.faults.items())),
        }


class DemoStats:
    """The counters of all four doors; one object shared by them."""

    def __init__(self) -> None:
        self.started_ms = now_ms()
        self.doors: dict[Door, DoorStats] = {door: DoorStats() for door in DOORS}

    def __getitem__(self, door: Door) -> DoorStats:
        return self.doors[door]

    @property
    def open_streams(self) -> int:
        return sum(d.open_streams for d in self.doors.values())

    def as_dict(self) -> dict[str, Any]:
        """``{"now_ms", "started_ms", "doors": {door: counters}}``."""
        return {
            "now_ms": now_ms(),
            "started_ms": self.started_ms,
            "doors": {name: d.as_dict() for name, d in self.doors.items()},
        }
