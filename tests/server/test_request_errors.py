"""Requests the bridge refuses before a stream starts: status, stable code, and a message
that names the problem (400 malformed, 404 unknown backend, 409 duplicate stream id)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from bridge_clients import BACKENDS, MESSAGES, chat_body, chat_sse


async def post(
    client: httpx.AsyncClient, url: str, auth: dict[str, str], body: Any
) -> httpx.Response:
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, (str, bytes)) else {"json": body}
    return await client.post(url, headers={**auth, "Content-Type": "application/json"}, **kwargs)


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error, dict)
    return error


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"backend": "demo-sse", "messages": [', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        ({"messages": MESSAGES}, "'backend'"),
        ({"backend": "demo-sse"}, "'messages'"),
        ({"backend": "demo-sse", "messages": []}, "'messages'"),
        (
            {"backend": "demo-sse", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {"backend": "demo-sse", "messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
        ),
        ({**chat_body(), "options": {"max_tokens": "many"}}, "'max_tokens'"),
        ({**chat_body(), "options": {"max_tokens": 0}}, "'max_tokens'"),
        ({**chat_body(), "options": {"bogus": 1}}, "'bogus'"),
        ({**chat_body(), "stream_id": "short"}, "'stream_id'"),
        ({**chat_body(), "stream_id": "bad id with spaces"}, "'stream_id'"),
        ({**chat_body(), "resumable": "yes"}, "'resumable'"),
        ({**chat_body(), "model": 7}, "'model'"),
    ],
)
async def test_malformed_request_is_400_naming_the_problem(
    body: Any, named: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    response = await post(client, base + "api/chat", auth, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "bad_request"
    assert named in error["message"]


async def test_malformed_json_says_where(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    response = await post(client, base + "api/chat", auth, b'{"backend": "demo-sse",, }')
    message = error_of(response)["message"]
    assert "line 1 column" in message


@pytest.mark.parametrize("key", ["url", "base_url", "endpoint", "headers", "api_key"])
async def test_browser_cannot_name_a_url_or_credentials(
    key: str, client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    body = {**chat_body(), key: "http://169.254.169.254/latest/meta-data/"}
    response = await post(client, base + "api/chat", auth, body)
    assert response.status_code == 400
    assert "never a URL" in error_of(response)["message"]


async def test_unknown_backend_is_404_listing_valid_names(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    response = await post(client, base + "api/chat", auth, chat_body("no-such-backend"))
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "unknown_backend"
    assert "'no-such-backend'" in error["message"]
    for name in BACKENDS:
        assert name in error["message"]
    assert sorted(error["valid"]) == sorted(BACKENDS)


async def test_duplicate_stream_id_is_409(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    body = chat_body(model="slow", max_tokens=4, stream_id="dup-stream-01")
    async with client.stream("POST", base + "api/chat", json=body, headers=auth) as first:
        assert first.status_code == 200
        second = await post(client, base + "api/chat", auth, body)
        assert second.status_code == 409
        error = error_of(second)
        assert error["code"] == "stream_exists"
        assert "dup-stream-01" in error["message"]
        await first.aread()
    # Still taken while the ended stream can be resumed.
    again = await post(client, base + "api/chat", auth, body)
    assert again.status_code == 409


async def test_refused_request_opens_no_stream(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    for body in (b"{", chat_body("nope"), {**chat_body(), "url": "x"}):
        await post(client, base + "api/chat", auth, body)
    streams = (await client.get(base + "api/streams", headers=auth)).json()
    assert streams["live"] == []
    assert streams["recent"] == []


async def test_get_on_post_only_route_is_405(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    response = await client.get(base + "api/chat", headers=auth)
    assert response.status_code == 405
    assert "Traceback" not in response.text


async def test_error_body_never_echoes_internals(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    """A resume id the bridge never issued: a JSON 404, no stack trace."""
    reply = await chat_sse(client, base + "api/chat/never-issued-id", None, auth, method="GET")
    assert reply.status == 404
    error = json.loads(reply.body)["error"]
    assert error["code"] == "unknown_stream"
    assert "never-issued-id" in error["message"]
