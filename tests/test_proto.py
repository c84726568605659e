"""The generated protobuf module matches the shipped .proto (regenerate it if this fails)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROTO = Path(__file__).parent.parent / "jupyter_streamchat" / "proto"


@pytest.mark.parametrize("generated", ["streamchat_pb2.py", "streamchat_pb2.pyi"])
def test_generated_code_is_current(tmp_path: Path, generated: str) -> None:
    shutil.copy(PROTO / "streamchat.proto", tmp_path)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I.",
            "--python_out=.",
            "--pyi_out=.",
            "streamchat.proto",
        ],
        cwd=tmp_path,
        check=True,
    )
    fresh = (tmp_path / generated).read_text()
    assert fresh == (PROTO / generated).read_text(), (
        f"{generated} is stale: run protoc in jupyter_streamchat/proto (see its __init__.py)"
    )


def test_service_paths_match_the_proto() -> None:
    from jupyter_streamchat.proto.service import CHAT, GENERATE, pb

    service = pb.DESCRIPTOR.services_by_name["StreamChat"]
    assert f"/{service.full_name}/Generate" == GENERATE
    assert f"/{service.full_name}/Chat" == CHAT
    assert service.methods_by_name["Generate"].server_streaming
    assert service.methods_by_name["Chat"].client_streaming
