import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import {
  authHeaders,
  backoffMs,
  isStreamId,
  joinUrl,
  newStreamId,
  openStream,
  readXsrfCookie,
  wsUrl,
  type ClientEnv,
  type OpenStreamOptions,
  type ReceiveInfo,
} from "../src/client";
import type { StreamEvent } from "../src/events";
import { Body, fakeFetch, FakeSocket, jsonResponse, settle, sse, sseResponse } from "./helpers/fakes";

const START = { type: "start", seq: 0, recv_ms: 1, send_ms: 1.5, backend: "demo-sse", protocol: "openai" };
const tok = (seq: number, text: string, chunks = 1) => ({ type: "token", seq, recv_ms: 10 + seq, send_ms: 10.2 + seq, text, chunks });
const DONE = (seq: number) => ({ type: "done", seq, recv_ms: 100, send_ms: 100.1, finish_reason: "stop" });

interface Run {
  events: StreamEvent[];
  infos: ReceiveInfo[];
  legs: string[];
  sleeps: number[];
  handle: ReturnType<typeof openStream>;
}

function run(options: Partial<OpenStreamOptions> & { env: Partial<ClientEnv> }): Run {
  const events: StreamEvent[] = [];
  const infos: ReceiveInfo[] = [];
  const legs: string[] = [];
  const sleeps: number[] = [];
  const handle = openStream({
    baseUrl: "/user/x/",
    leg: "sse",
    request: { backend: "demo-sse", messages: [{ role: "user", content: "hi" }] },
    onEvent: (e, info) => {
      events.push(e);
      infos.push(info);
    },
    onLeg: (leg) => legs.push(leg),
    streamId: "client0001",
    ...options,
    env: {
      now: () => 1000,
      sleep: async (ms: number) => {
        sleeps.push(ms);
      },
      origin: "http://localhost:8888",
      WebSocket: FakeSocket,
      ...options.env,
    },
  });
  return { events, infos, legs, sleeps, handle };
}

const texts = (events: StreamEvent[]): string => events.map((e) => (e.type === "token" ? e.text : "")).join("");
const seqs = (events: StreamEvent[]): number[] => events.filter((e) => e.type !== "heartbeat").map((e) => e.seq);

beforeEach(() => FakeSocket.reset());

test("helpers: urls, auth, xsrf cookie, stream ids, backoff", () => {
  assert.equal(joinUrl("/user/x", "streamchat/api/chat"), "/user/x/streamchat/api/chat");
  assert.equal(joinUrl("/", "/streamchat/api/chat"), "/streamchat/api/chat");
  assert.equal(wsUrl("https://hub.example", "/user/x/", "streamchat/api/chat/ws"), "wss://hub.example/user/x/streamchat/api/chat/ws");
  assert.equal(wsUrl("http://h:1", "/", "streamchat/api/chat/ws", "a b"), "ws://h:1/streamchat/api/chat/ws?token=a%20b");
  assert.deepEqual(authHeaders("T", "X"), { Authorization: "token T" });
  assert.deepEqual(authHeaders(undefined, "X"), { "X-XSRFToken": "X" });
  assert.deepEqual(authHeaders(), {});
  assert.equal(readXsrfCookie("a=1; _xsrf=2%7C3; b=4"), "2|3");
  assert.equal(readXsrfCookie("a=1"), undefined);
  for (let i = 0; i < 20; i += 1) assert.ok(isStreamId(newStreamId()));
  assert.equal(isStreamId("short"), false);
  assert.equal(isStreamId("has space!"), false);
  assert.deepEqual([0, 1, 2, 3, 4].map((a) => backoffMs({ attempts: 5, baseDelayMs: 200 }, a)), [200, 400, 800, 1600, 3200]);
});

test("SSE: POST with token auth and client stream_id; events in order; counters", async () => {
  const body = new Body();
  const { fetch, calls } = fakeFetch(() => sseResponse(body, { "X-StreamChat-Stream-Id": "client0001" }));
  const r = run({ token: "T", clockOffsetMs: 5, env: { fetch } });
  await settle();
  body.push(sse(START) + sse(tok(1, "Hel")));
  body.push(": hb 55.5\n\n");
  body.push(sse(tok(2, "lo", 3)) + sse({ type: "usage", seq: 3, recv_ms: 1, completion_tokens: 4 }));
  body.push(sse(DONE(4)));
  const terminal = await r.handle.done;
  assert.equal(terminal.type, "done");
  const call = calls[0]!;
  assert.equal(call.url, "/user/x/streamchat/api/chat");
  assert.equal(call.init.method, "POST");
  assert.equal(call.headers["authorization"], "token T");
  assert.equal(call.headers["content-type"], "application/json");
  assert.equal(call.headers["x-xsrftoken"], undefined);
  assert.deepEqual(call.body, {
    backend: "demo-sse",
    messages: [{ role: "user", content: "hi" }],
    stream_id: "client0001",
    resumable: true,
  });
  assert.deepEqual(r.events.map((e) => e.type), ["start", "token", "heartbeat", "token", "usage", "done"]);
  assert.deepEqual(r.events[2], { type: "heartbeat", seq: 1, recv_ms: 55.5 });
  assert.equal(texts(r.events), "Hello");
  assert.deepEqual(r.legs, ["sse"]);
  assert.equal(r.handle.leg, "sse");
  assert.ok(r.infos.every((i) => i.browserMs === 1005 && !i.synthetic), "browser time aligned by the offset");
  const c = r.handle.counters;
  assert.equal(c.arrivals, 2);
  assert.equal(c.chunks, 4);
  assert.equal(c.events, 5);
  assert.equal(c.heartbeats, 1);
  assert.equal(c.duplicates, 0);
  assert.equal(c.reconnects, 0);
  assert.ok(c.reads >= 3);
});

test("SSE: cookie auth sends X-XSRFToken", async () => {
  const body = new Body();
  const { fetch, calls } = fakeFetch(() => sseResponse(body));
  const r = run({ xsrf: "2|abc", env: { fetch } });
  await settle();
  body.push(sse(DONE(0)));
  await r.handle.done;
  assert.equal(calls[0]!.headers["x-xsrftoken"], "2|abc");
  assert.equal(calls[0]!.headers["authorization"], undefined);
});

test("SSE: a dropped body resumes with Last-Event-ID; duplicates dropped; seq may jump", async () => {
  const first = new Body();
  const second = new Body();
  const { fetch, calls } = fakeFetch((_call, i) => sseResponse(i === 0 ? first : second));
  const r = run({ env: { fetch } });
  await settle();
  first.push(sse({ ...START, stream_id: "bridge0001" }) + sse(tok(1, "a")) + sse(tok(2, "b")));
  await settle();
  first.fail();
  await settle();
  assert.equal(calls.length, 2);
  const resume = calls[1]!;
  assert.equal(resume.url, "/user/x/streamchat/api/chat/bridge0001", "resumes with the bridge's id from start");
  assert.equal(resume.init.method, "GET");
  assert.equal(resume.headers["last-event-id"], "2");
  // The bridge replays from an earlier point, and coalesced 4..6 into one token.
  second.push(sse(tok(2, "b")) + sse(tok(3, "c")) + sse(tok(6, "def", 3)) + sse(DONE(7)));
  const terminal = await r.handle.done;
  assert.equal(terminal.type, "done");
  assert.equal(texts(r.events), "abcdef");
  assert.deepEqual(seqs(r.events), [0, 1, 2, 3, 6, 7]);
  assert.equal(r.handle.counters.duplicates, 1);
  assert.equal(r.handle.counters.reconnects, 1);
  assert.equal(r.handle.counters.chunks, 6);
  assert.equal(r.handle.counters.arrivals, 4);
  assert.deepEqual(r.sleeps, [200]);
});

test("SSE: a body that ends without the terminal event is a drop too", async () => {
  const bodies = [new Body(), new Body()];
  const { fetch, calls } = fakeFetch((_c, i) => sseResponse(bodies[i]!));
  const r = run({ env: { fetch } });
  await settle();
  bodies[0]!.push(sse(START));
  bodies[0]!.close();
  await settle();
  assert.equal(calls[1]!.headers["last-event-id"], "0");
  bodies[1]!.push(sse(DONE(1)));
  assert.equal((await r.handle.done).type, "done");
});

test("SSE: lost before start — resume without Last-Event-ID, 404 means never started, so POST again", async () => {
  const body = new Body();
  const { fetch, calls } = fakeFetch((call, i) => {
    if (i === 0) throw new TypeError("Failed to fetch");
    if (call.init.method === "GET") return jsonResponse(404, { error: { code: "unknown_stream", message: "no such stream" } });
    return sseResponse(body);
  });
  const r = run({ env: { fetch } });
  await settle();
  await settle();
  assert.deepEqual(calls.map((c) => c.init.method), ["POST", "GET", "POST"]);
  assert.equal(calls[1]!.url, "/user/x/streamchat/api/chat/client0001");
  assert.equal(calls[1]!.headers["last-event-id"], undefined);
  assert.equal((calls[2]!.body as { stream_id: string }).stream_id, "client0001");
  body.push(sse(START) + sse(DONE(1)));
  assert.equal((await r.handle.done).type, "done");
});

test("SSE: a re-POST answered 409 means the first POST did land: resume instead", async () => {
  const body = new Body();
  const { fetch, calls } = fakeFetch((call, i) => {
    if (i === 0) throw new TypeError("Failed to fetch");
    if (i === 1) return jsonResponse(404, { error: { code: "unknown_stream", message: "not yet" } });
    if (i === 2) return jsonResponse(409, { error: { code: "stream_exists", message: "exists" } });
    return sseResponse(body);
  });
  const r = run({ env: { fetch } });
  await settle(20);
  assert.deepEqual(calls.map((c) => c.init.method), ["POST", "GET", "POST", "GET"]);
  body.push(sse(START) + sse(DONE(1)));
  assert.equal((await r.handle.done).type, "done");
});

test("SSE: resume attempts are bounded, with doubling backoff, then a synthetic error keeps partial", async () => {
  const first = new Body();
  const { fetch, calls } = fakeFetch((_c, i) => {
    if (i === 0) return sseResponse(first);
    throw new TypeError("network down");
  });
  const r = run({ env: { fetch } });
  await settle();
  first.push(sse(START) + sse(tok(1, "part")));
  await settle();
  first.fail();
  const terminal = await r.handle.done;
  assert.equal(calls.length, 6, "1 + 5 attempts");
  assert.deepEqual(r.sleeps, [200, 400, 800, 1600, 3200]);
  assert.equal(terminal.type, "error");
  if (terminal.type !== "error") return;
  assert.equal(terminal.code, "upstream_closed");
  assert.equal(terminal.partial, true);
  assert.equal(terminal.retryable, true);
  assert.equal(terminal.seq, 2);
  assert.match(terminal.message, /after 5 reconnection attempts/);
  assert.equal(r.infos[r.infos.length - 1]!.synthetic, true);
  assert.equal(texts(r.events), "part");
});

test("SSE: the resume window passed (410) ends the stream", async () => {
  const first = new Body();
  const { fetch } = fakeFetch((_c, i) => (i === 0 ? sseResponse(first) : jsonResponse(410, { error: { code: "gone", message: "evicted" } })));
  const r = run({ env: { fetch } });
  await settle();
  first.push(sse(START));
  await settle();
  first.fail();
  const t = await r.handle.done;
  assert.equal(t.type === "error" && t.code, "upstream_closed");
  assert.match(t.type === "error" ? t.message : "", /cannot be resumed \(HTTP 410 gone: evicted\)/);
});

test("SSE: refusals before the stream map to error events naming the bridge's code", async () => {
  const cases: Array<[number, string, string, boolean]> = [
    [404, "unknown_backend", "http_status", false],
    [400, "bad_request", "http_status", false],
    [413, "too_large", "limit_exceeded", false],
    [429, "too_many_streams", "limit_exceeded", true],
  ];
  for (const [status, code, expected, retryable] of cases) {
    const { fetch, calls } = fakeFetch(() => jsonResponse(status, { error: { code, message: "details" } }));
    const r = run({ env: { fetch } });
    const t = await r.handle.done;
    assert.equal(calls.length, 1, `${status} is not retried`);
    assert.equal(t.type, "error");
    if (t.type !== "error") continue;
    assert.equal(t.code, expected);
    assert.equal(t.status, status);
    assert.equal(t.retryable, retryable);
    assert.equal(t.message, `${code}: details`);
  }
});

test("SSE: a non-event-stream answer or an invalid event is a protocol error", async () => {
  {
    const { fetch } = fakeFetch(() => new Response("<html>login</html>", { headers: { "Content-Type": "text/html" } }));
    const t = await run({ env: { fetch } }).handle.done;
    assert.equal(t.type === "error" && t.code, "protocol_error");
    assert.match(t.type === "error" ? t.message : "", /expected text\/event-stream.*text\/html/);
  }
  {
    const body = new Body();
    const { fetch } = fakeFetch(() => sseResponse(body));
    const r = run({ env: { fetch } });
    await settle();
    body.push(sse(START) + sse({ type: "token", seq: 1, recv_ms: 1 }));
    const t = await r.handle.done;
    assert.equal(t.type === "error" && t.code, "protocol_error");
    assert.match(t.type === "error" ? t.message : "", /token event lacks field "text"/);
    assert.equal(t.type === "error" && t.retryable, false);
  }
});

test("SSE: cancel aborts the fetch and ends as cancelled (partial kept)", async () => {
  const body = new Body();
  const { fetch, calls } = fakeFetch(() => sseResponse(body));
  const r = run({ env: { fetch } });
  await settle();
  body.push(sse(START) + sse(tok(1, "par")));
  await settle();
  r.handle.cancel();
  const t = await r.handle.done;
  assert.equal(t.type === "error" && t.code, "cancelled");
  assert.equal(t.type === "error" && t.partial, true);
  assert.equal((calls[0]!.init.signal as AbortSignal).aborted, true);
  // A resumable stream outlives its connection on the bridge: stop cancels it there.
  assert.equal(calls.length, 2, "no resume after a cancel, one DELETE");
  assert.equal(calls[1]!.init.method, "DELETE");
  assert.equal(calls[1]!.url, "/user/x/streamchat/api/chat/client0001");
  assert.equal(r.events.filter((e) => e.type === "error").length, 1);
});

test("an external AbortSignal cancels too; events after the terminal are never delivered", async () => {
  const body = new Body();
  const { fetch } = fakeFetch(() => sseResponse(body));
  const ac = new AbortController();
  const r = run({ signal: ac.signal, env: { fetch } });
  await settle();
  ac.abort();
  const t = await r.handle.done;
  assert.equal(t.type === "error" && t.code, "cancelled");
  assert.equal(r.events.length, 1);
});

test("WS: URL from origin + base + token, chat message carries stream_id, events flow", async () => {
  const r = run({ leg: "ws", token: "T k", env: { fetch: fakeFetch(() => jsonResponse(500, {})).fetch } });
  const ws = FakeSocket.last();
  assert.equal(ws.url, "ws://localhost:8888/user/x/streamchat/api/chat/ws?token=T%20k");
  ws.open();
  assert.deepEqual(ws.sent, [
    { type: "chat", backend: "demo-sse", messages: [{ role: "user", content: "hi" }], stream_id: "client0001", resumable: true },
  ]);
  ws.receive(START);
  ws.receive(tok(1, "x"));
  ws.receive({ type: "heartbeat", seq: 1, recv_ms: 3 });
  ws.receive(DONE(2));
  const t = await r.handle.done;
  assert.equal(t.type, "done");
  assert.deepEqual(r.legs, ["ws"]);
  assert.deepEqual(r.events.map((e) => e.type), ["start", "token", "heartbeat", "done"]);
  assert.equal(ws.closedWith, 1000);
  assert.equal(r.handle.counters.reads, 3);
});

test("WS: events that left together arrive as one array message: one read, each event kept", async () => {
  const r = run({ leg: "ws", env: { fetch: fakeFetch(() => jsonResponse(500, {})).fetch } });
  const ws = FakeSocket.last();
  ws.open();
  ws.receive(START);
  ws.receive([tok(1, "a"), tok(2, "b"), tok(3, "c")]);
  ws.receive([tok(4, "d"), DONE(5)]);
  const t = await r.handle.done;
  assert.equal(t.type, "done");
  assert.deepEqual(
    r.events.filter((e) => e.type === "token").map((e) => (e.type === "token" ? e.text : "")),
    ["a", "b", "c", "d"],
  );
  assert.equal(r.handle.counters.reads, 3);
});

test("WS: a closed socket reopens and resumes from last_seq; duplicates dropped", async () => {
  const r = run({ leg: "ws", env: {} });
  const a = FakeSocket.last();
  a.open();
  a.receive({ ...START, stream_id: "bridge0002" });
  a.receive(tok(1, "a"));
  a.drop(1006);
  await settle();
  const b = FakeSocket.last();
  assert.notEqual(a, b);
  b.open();
  assert.deepEqual(b.sent, [{ type: "resume", stream_id: "bridge0002", last_seq: 1 }]);
  b.receive(tok(1, "a"));
  b.receive(tok(4, "bcd", 3));
  b.receive(DONE(5));
  await r.handle.done;
  assert.equal(texts(r.events), "abcd");
  assert.equal(r.handle.counters.duplicates, 1);
  assert.deepEqual(r.sleeps, [200]);
});

test("WS: dropped before any event resumes from -1; unknown stream then re-sends the chat", async () => {
  const r = run({ leg: "ws", env: {} });
  const a = FakeSocket.last();
  a.open();
  a.drop();
  await settle();
  const b = FakeSocket.last();
  b.open();
  assert.deepEqual(b.sent, [{ type: "resume", stream_id: "client0001", last_seq: -1 }]);
  b.receive({ type: "request_error", status: 404, code: "unknown_stream", message: "no" });
  await settle();
  const c = FakeSocket.last();
  c.open();
  assert.equal((c.sent[0] as { type: string }).type, "chat");
  c.receive(DONE(0));
  assert.equal((await r.handle.done).type, "done");
});

test("WS: request_error before the stream is an error event", async () => {
  const r = run({ leg: "ws", env: {} });
  const ws = FakeSocket.last();
  ws.open();
  ws.receive({ type: "request_error", status: 404, code: "unknown_backend", message: "valid: demo-sse" });
  const t = await r.handle.done;
  assert.equal(t.type === "error" && t.code, "http_status");
  assert.equal(t.type === "error" && t.message, "unknown_backend: valid: demo-sse");
});

test("WS: cancel sends {type: cancel} and closes", async () => {
  const r = run({ leg: "ws", env: {} });
  const ws = FakeSocket.last();
  ws.open();
  ws.receive(START);
  r.handle.cancel();
  const t = await r.handle.done;
  assert.equal(t.type === "error" && t.code, "cancelled");
  assert.deepEqual(ws.sent[1], { type: "cancel" });
  assert.equal(ws.closedWith, 1000);
  assert.equal(FakeSocket.instances.length, 1);
});

test("auto: WebSocket when it opens in time", async () => {
  const r = run({ leg: "auto", wsOpenTimeoutMs: 50, env: {} });
  const ws = FakeSocket.last();
  ws.open();
  ws.receive(DONE(0));
  await r.handle.done;
  assert.deepEqual(r.legs, ["ws"]);
  assert.equal(r.handle.leg, "ws");
});

test("auto: SSE when the socket does not open within the window (no attempt spent)", async () => {
  const body = new Body();
  const { fetch, calls } = fakeFetch(() => sseResponse(body));
  const r = run({ leg: "auto", wsOpenTimeoutMs: 20, env: { fetch } });
  await new Promise((res) => setTimeout(res, 40));
  await settle();
  assert.equal(FakeSocket.last().closedWith, 1000);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.init.method, "POST");
  body.push(sse(DONE(0)));
  await r.handle.done;
  assert.deepEqual(r.legs, ["sse"]);
  assert.deepEqual(r.sleeps, []);
});

test("auto: SSE at once when the socket fails before opening", async () => {
  const body = new Body();
  const { fetch, calls } = fakeFetch(() => sseResponse(body));
  const r = run({ leg: "auto", env: { fetch } });
  FakeSocket.last().drop(1006);
  await settle();
  assert.equal(calls.length, 1);
  body.push(sse(DONE(0)));
  await r.handle.done;
  assert.equal(r.handle.leg, "sse");
});

test("an invalid stream id is refused up front", () => {
  assert.throws(() => run({ streamId: "bad id", env: {} }), /not 8-64/);
});

test("a terminal event is taken even if its seq does not move forward", async () => {
  const body = new Body();
  const { fetch } = fakeFetch(() => sseResponse(body));
  const r = run({ env: { fetch } });
  await settle();
  body.push(sse(START) + sse(tok(1, "a")) + sse({ type: "error", seq: 0, recv_ms: 1, code: "cancelled", message: "stopped" }));
  const t = await r.handle.done;
  assert.equal(t.type === "error" && t.code, "cancelled");
  assert.equal(r.infos[r.infos.length - 1]!.synthetic, false);
});
