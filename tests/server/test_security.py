"""Security: every route is behind Jupyter auth, cookie-authenticated POSTs need XSRF,
WebSockets check the Origin the Jupyter way, and a refused request never reaches a backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bridge_clients import MESSAGES, chat_body, chat_sse, ws_events
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from jupyter_streamchat.demo.stats import DemoStats

STREAM_ID = "some-stream-id-01"
OPENAI_BODY = {"model": "demo-sse/instant", "messages": MESSAGES, "max_tokens": 2}
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "api/clock", None),
    ("GET", "api/backends", None),
    ("GET", "api/streams", None),
    ("GET", f"api/streams/{STREAM_ID}", None),
    ("POST", "api/chat", chat_body()),
    ("GET", f"api/chat/{STREAM_ID}", None),
    ("DELETE", f"api/chat/{STREAM_ID}", None),
    ("GET", "api/chat/ws", None),
    ("POST", "v1/chat/completions", OPENAI_BODY),
    ("POST", "v1/chat/completions", {**OPENAI_BODY, "stream": True}),
    ("GET", "v1/models", None),
]
ROUTE_IDS = [f"{m} {p}" for m, p, b in ROUTES]


def refused(response: httpx.Response) -> bool:
    """403, or a redirect to the login page; either way nothing of the route's content."""
    if response.status_code == 403:
        return True
    return response.status_code in (301, 302, 303, 307) and "login" in response.headers["location"]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("credentials", ["none", "wrong token", "token in wrong header"])
async def test_every_route_needs_auth(
    method: str,
    path: str,
    body: Any,
    credentials: str,
    base: str,
    counters: DemoStats,
) -> None:
    headers = {
        "none": {},
        "wrong token": {"Authorization": "token not-the-token"},
        "token in wrong header": {"X-Authorization": "token whatever"},
    }[credentials]
    requests_before = sum(d.requests for d in counters.doors.values())
    async with httpx.AsyncClient(follow_redirects=False, timeout=30) as anonymous:
        response = await anonymous.request(method, base + path, json=body, headers=headers)
    assert refused(response), (response.status_code, response.text[:200])
    assert "event:" not in response.text
    assert "demo-sse" not in response.text
    assert sum(d.requests for d in counters.doors.values()) == requests_before


async def test_websocket_needs_auth(ws_url: str) -> None:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(ws_url):
            pass
    assert refusal.value.response.status_code == 403


async def test_token_in_url_is_accepted(
    client: httpx.AsyncClient, base: str, auth: dict[str, str]
) -> None:
    token = auth["Authorization"].removeprefix("token ")
    response = await client.get(base + "api/clock", params={"token": token})
    assert response.status_code == 200


@pytest.fixture
async def browser(
    base: str, auth: dict[str, str], jp_http_port: int, jp_base_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client that logged in once and from then on carries only cookies, like a browser."""
    root = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    async with httpx.AsyncClient(timeout=30, follow_redirects=False) as c:
        await c.get(root + "login")  # the login page sets the _xsrf cookie
        login = await c.get(base + "api/clock", headers=auth)  # sets the login cookie
        assert login.status_code == 200
        assert "_xsrf" in c.cookies
        assert any(name.startswith("username-") for name in c.cookies)
        yield c


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "api/chat", chat_body()),
        ("POST", "v1/chat/completions", OPENAI_BODY),
        ("DELETE", f"api/chat/{STREAM_ID}", None),
    ],
    ids=["POST api/chat", "POST v1/chat/completions", "DELETE api/chat/{id}"],
)
async def test_cookie_authenticated_write_needs_xsrf(
    method: str, path: str, body: Any, browser: httpx.AsyncClient, base: str, counters: DemoStats
) -> None:
    requests_before = sum(d.requests for d in counters.doors.values())
    without = await browser.request(method, base + path, json=body)
    assert without.status_code == 403
    assert "xsrf" in without.text.lower() or "forbidden" in without.text.lower()
    assert sum(d.requests for d in counters.doors.values()) == requests_before
    xsrf = {"X-XSRFToken": browser.cookies["_xsrf"]}
    forged = await browser.request(
        method, base + path, json=body, headers={"X-XSRFToken": "2|x|y|1"}
    )
    assert forged.status_code == 403
    with_token = await browser.request(method, base + path, json=body, headers=xsrf)
    assert with_token.status_code in (200, 404)  # 404: DELETE of a stream that does not exist


async def test_cookie_authenticated_get_works(browser: httpx.AsyncClient, base: str) -> None:
    response = await browser.get(base + "api/backends")
    assert response.status_code == 200
    assert {b["name"] for b in response.json()["backends"]} >= {"demo-sse"}


def _cookie_header(browser: httpx.AsyncClient) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())}


async def test_websocket_from_a_foreign_origin_is_refused(
    browser: httpx.AsyncClient, ws_url: str
) -> None:
    cookies = _cookie_header(browser)
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(ws_url, additional_headers=cookies, origin="http://evil.example.com"):
            pass
    assert refusal.value.response.status_code == 403


async def test_websocket_from_the_same_origin_is_accepted(
    browser: httpx.AsyncClient, ws_url: str, jp_http_port: int
) -> None:
    cookies = _cookie_header(browser)
    origin = f"http://127.0.0.1:{jp_http_port}"
    async with connect(ws_url, additional_headers=cookies, origin=origin) as ws:
        await ws.send(json.dumps({"type": "chat", **chat_body()}))
        events = await ws_events(ws)
    assert events[-1].type == "done"


async def test_sse_chat_with_cookie_and_xsrf(browser: httpx.AsyncClient, base: str) -> None:
    headers = {"X-XSRFToken": browser.cookies["_xsrf"]}
    reply = await chat_sse(browser, base + "api/chat", chat_body(), headers)
    assert reply.status == 200
    assert reply.types[-1] == "done"
