"""The extension as installed, its config, and what it tells about each stream: the clock
for aligning timestamps, the live and recent streams with their phase times and close
reason."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from bridge_clients import chat_body, chat_sse, seq_after, wait_until

from jupyter_streamchat.events import now_ms
from jupyter_streamchat.server.app import StreamChatApp

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_extension_is_enabled_on_install() -> None:
    """``jupyter server extension list`` shows it enabled and importable (a real subprocess)."""
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "server", "extension", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    assert re.search(r"jupyter_streamchat\s+enabled", output), output
    assert re.search(r"jupyter_streamchat \S+ OK", output), output


@pytest.mark.parametrize(
    "name",
    [
        "backends",
        "demo",
        "discovery",
        "max_request_bytes",
        "max_concurrent_streams",
        "max_stream_seconds",
        "upstream_idle_timeout",
        "resume_window",
        "compression",
    ],
)
def test_config_trait_exists(name: str) -> None:
    assert name in StreamChatApp.class_traits(config=True)


def test_every_config_trait_has_help() -> None:
    traits = StreamChatApp.class_traits(config=True)
    own = {n: t for n, t in traits.items() if n in StreamChatApp.__dict__}
    assert len(own) >= 10
    for name, trait in own.items():
        assert len(trait.help.split()) >= 3, name
    for name in ("max_request_bytes", "resume_buffer_bytes", "max_pending_bytes"):
        assert "bytes" in own[name].help, name
    for name in ("max_stream_seconds", "resume_window", "heartbeat_interval"):
        assert "second" in own[name].help.lower(), name


def test_demo_is_on_by_default() -> None:
    assert StreamChatApp.class_traits()["demo"].default_value is True
    assert StreamChatApp.class_traits()["compression"].default_value == "off"


async def test_clock(client: httpx.AsyncClient, base: str, auth: dict[str, str]) -> None:
    """Several samples, the tightest round trip kept: the offset to this process's clock (the
    same clock) is within that round trip."""
    samples = []
    for _ in range(5):
        t0 = now_ms()
        response = await client.get(base + "api/clock", headers=auth)
        t1 = now_ms()
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        samples.append((t1 - t0, response.json()["now_ms"] - (t0 + t1) / 2))
    rtt, offset = min(samples)
    assert abs(offset) <= rtt / 2 + 1.0


async def test_streams_listing_during_and_after_a_stream(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], app: StreamChatApp
) -> None:
    body = chat_body("demo-sse", "steady", 15)
    async with client.stream("POST", base + "api/chat", json=body, headers=auth) as response:
        stream_id = response.headers["x-streamchat-stream-id"]
        live = (await client.get(base + "api/streams", headers=auth)).json()["live"]
        assert [s["id"] for s in live] == [stream_id]
        assert live[0]["attached"] is True
        assert live[0]["closed_ms"] is None
        await response.aread()
    await wait_until(lambda: stream_id not in app.bridge.sessions, 5.0)
    listing = (await client.get(base + "api/streams", headers=auth)).json()
    assert listing["live"] == []
    (done,) = listing["recent"]
    assert done["id"] == stream_id
    assert done["reason"] == "done"
    assert done["tokens"] == 15
    assert done["completion_tokens"] == 15
    assert 0 <= done["upstream_ms"] <= done["first_byte_ms"] <= done["first_token_ms"]
    assert done["first_token_ms"] <= done["closed_ms"]
    # steady: ~250 ms to the first token, then 14 more 20 ms apart.
    assert done["first_token_ms"] >= 150
    assert done["closed_ms"] - done["first_token_ms"] >= 0.5 * 14 * 20
    # Per token: when the bridge received it and when it wrote it to this client.
    detail = (await client.get(base + f"api/streams/{stream_id}", headers=auth)).json()
    rows = detail["token_times"]
    assert len(rows) == 15
    assert all(recv <= send for recv, send in rows)
    assert rows[0][0] == pytest.approx(done["first_token_ms"], abs=0.01)
    assert [recv for recv, _ in rows] == sorted(recv for recv, _ in rows)
    missing = await client.get(base + "api/streams/no-such-stream", headers=auth)
    assert missing.status_code == 404


async def test_close_reasons(
    client: httpx.AsyncClient, base: str, auth: dict[str, str], app: StreamChatApp
) -> None:
    """How each stream ended is recorded: done, a backend error, a cancel, a client leaving."""
    url = base + "api/chat"
    await chat_sse(client, url, chat_body(stream_id="reason-done-01"), auth)
    failing = chat_body(model="instant:drop@2", stream_id="reason-error-1")
    await chat_sse(client, url, failing, auth)
    left = chat_body(model="steady", max_tokens=500, stream_id="reason-gone-01")
    await chat_sse(client, url, left, auth, stop=seq_after(1))
    kept = chat_body(model="steady", max_tokens=500, stream_id="reason-cancel1", resumable=True)
    await chat_sse(client, url, kept, auth, stop=seq_after(1))
    assert (await client.delete(url + "/reason-cancel1", headers=auth)).status_code == 204
    await wait_until(lambda: not app.bridge.sessions, 5.0)
    listing = (await client.get(base + "api/streams", headers=auth)).json()
    recent = {s["id"]: s["reason"] for s in listing["recent"]}
    assert recent == {
        "reason-done-01": "done",
        "reason-error-1": "error",
        "reason-gone-01": "client_gone",
        "reason-cancel1": "client_cancelled",
    }


async def test_events_carry_timing_stamps(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    sent = now_ms()
    reply = await chat_sse(client, base + "api/chat", chat_body("demo-ndjson", "fast", 10), auth)
    for event in reply.events:
        data = event.data
        assert sent <= data["recv_ms"] <= data["send_ms"] <= now_ms()
        if event.type == "token":
            assert data["emit_ms"] <= data["recv_ms"]
