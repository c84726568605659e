"""Method paths and (de)serializers of ``streamchat.proto``'s service.

Written by hand instead of generated ``*_pb2_grpc.py``: the generated module
imports its sibling by a top-level name and pins the grpcio version it was
made with; these few lines do neither.
"""

from __future__ import annotations

from typing import Final

from . import streamchat_pb2 as pb

__all__ = ["CHAT", "GENERATE", "SERVICE", "pb"]

SERVICE: Final = "jupyter_streamchat.v1.StreamChat"
GENERATE: Final = f"/{SERVICE}/Generate"
CHAT: Final = f"/{SERVICE}/Chat"
