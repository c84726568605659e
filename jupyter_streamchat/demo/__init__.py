"""The built-in demo model: one deterministic token source behind four doors.

* :mod:`.text`      seeded Markov text from a public-domain corpus, BPE-like pieces
* :mod:`.profiles`  timing profiles (``instant``, ``steady``, ``slow``, ``jittery``, ``fast``)
* :mod:`.faults`    ``PROFILE[:FAULT[@N]]`` model names: fault injection per request
* :mod:`.model`     admission, pacing and counting, shared by the doors
* doors: :mod:`.openai_door` (SSE), :mod:`.ollama_door` (NDJSON),
  :mod:`.ws_door` (JSON WebSocket), :mod:`.grpc_door` (``streamchat.proto``)
* :mod:`.servers`   :class:`DemoServers`, all of them in this process
"""

from __future__ import annotations

from .faults import FAULTS, Fault, ModelSpec, ModelSpecError, parse_model
from .model import DemoConfig, DemoModel, DemoRequest, Rejection
from .profiles import PROFILES, Jitter, Profile
from .servers import DemoServers
from .stats import DOORS, DemoStats, Door, DoorStats

__all__ = [
    "DOORS",
    "FAULTS",
    "PROFILES",
    "DemoConfig",
    "DemoModel",
    "DemoRequest",
    "DemoServers",
    "DemoStats",
    "Door",
    "DoorStats",
    "Fault",
    "Jitter",
    "ModelSpec",
    "ModelSpecError",
    "Profile",
    "Rejection",
    "parse_model",
]
