"""``jupyter streamchat demo`` / ``show`` as a user runs them: a real subprocess."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jupyter_streamchat.cli import main

STARTUP_TIMEOUT_S = 20
EXIT_TIMEOUT_S = 10


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "jupyter_streamchat.cli", *args]


async def _spawn(cmd: list[str]) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


@pytest.fixture
async def demo_process() -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, object]]]:
    proc = await _spawn(_command("demo", "--profile", "steady"))
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT_S)
        yield proc, json.loads(line)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_demo_prints_urls_streams_paced_and_exits_on_sigint(
    demo_process: tuple[asyncio.subprocess.Process, dict[str, object]],
) -> None:
    proc, urls = demo_process
    assert set(urls) == {"openai", "ollama", "websocket", "grpc", "stats", "backends"}
    openai = urls["openai"]
    assert isinstance(openai, str)
    assert openai.startswith("http://127.0.0.1:")
    models = ["instant", "steady", "slow", "jittery", "fast"]
    assert urls["backends"] == {
        "demo-sse": {"protocol": "openai", "url": openai, "models": models},
        "demo-ndjson": {"protocol": "ollama", "url": urls["ollama"], "models": models},
        "demo-ws": {"protocol": "websocket", "url": urls["websocket"], "models": models},
        "demo-grpc": {"protocol": "grpc", "url": urls["grpc"], "models": models},
    }

    body = {"model": "", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    body["max_tokens"] = 25
    arrivals: list[float] = []
    lines: list[str] = []
    async with httpx.AsyncClient(timeout=10) as client:
        t0 = time.perf_counter()
        async with client.stream("POST", f"{openai}/chat/completions", json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line:
                    arrivals.append(1000 * (time.perf_counter() - t0))
                    lines.append(line)
        stats = (await client.get(str(urls["stats"]))).json()

    assert lines[-1] == "data: [DONE]"
    tokens = arrivals[1:-2]  # between the role chunk and the finish chunk + [DONE]
    assert len(tokens) == 25
    gaps = [b - a for a, b in itertools.pairwise(tokens)]
    # One by one at the steady profile's ~20 ms, not one burst at the end.
    assert 10 <= statistics.median(gaps) <= 40
    assert tokens[-1] - tokens[0] >= 300
    assert len(set(tokens)) >= 20
    assert 150 <= tokens[0] <= 1000  # the profile's 250 ms time to first token
    assert stats["doors"]["openai"]["completed"] == 1

    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S) == 0
    assert proc.stderr is not None
    stderr = (await proc.stderr.read()).decode()
    assert "Traceback" not in stderr, stderr
    assert "Warning" not in stderr, stderr


def _console_script() -> str | None:
    """``jupyter-streamchat`` next to this interpreter (a venv's bin), else on PATH."""
    beside = Path(sys.executable).with_name("jupyter-streamchat")
    return str(beside) if beside.exists() else shutil.which("jupyter-streamchat")


@pytest.mark.skipif(_console_script() is None, reason="console script not installed")
async def test_console_script_exits_on_sigterm() -> None:
    script = _console_script()
    assert script is not None
    proc = await _spawn([script, "demo", "--max-tokens", "8"])
    try:
        assert proc.stdout is not None
        urls = json.loads(await asyncio.wait_for(proc.stdout.readline(), STARTUP_TIMEOUT_S))
        async with httpx.AsyncClient() as client:
            body = {"model": "instant", "messages": [{"role": "user", "content": "hi"}]}
            reply = (await client.post(f"{urls['openai']}/chat/completions", json=body)).json()
        assert reply["usage"]["completion_tokens"] == 8
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_show_prints_each_doors_raw_frames() -> None:
    args = ("show", "--profile", "instant", "--max-tokens", "3", "--prompt", "hello")
    proc = await _spawn(_command(*args))
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    out = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    assert [line.split()[1] for line in out.splitlines() if line.startswith("== ")] == [
        "OpenAI",
        "Ollama",
        "JSON",
        "gRPC",
    ]
    assert "data: [DONE]" in out
    assert '"done":true,"done_reason":"length"' in out
    assert '{"done":true,"finish_reason":"length"' in out
    assert 'done: true finish_reason: "length"' in out
    assert "status OK" in out
    assert " ms  " in out  # every frame line carries its arrival time


def test_remote_host_needs_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--host", "0.0.0.0"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--port-openai", "70000"], "between 0 and 65535, got 70000"),
        (["demo", "--profile", "warp"], "invalid choice: 'warp'"),
        (["demo", "--max-tokens", "0"], "must be at least 1, got 0"),
        (["show", "--door", "smtp"], "invalid choice: 'smtp'"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_max_tokens_over_cap(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--max-tokens", "100", "--max-tokens-cap", "50"]) == 2
    assert "--max-tokens 100 is over --max-tokens-cap 50" in capsys.readouterr().err


def test_show_rejects_unknown_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--profile", "warp:drop@2"]) == 2
    assert "unknown profile 'warp'" in capsys.readouterr().err
