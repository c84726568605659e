import { test } from "node:test";
import assert from "node:assert/strict";
import { ChatController, conversation } from "../src/controller";
import type { Message } from "../src/model";
import { ChatView } from "../src/view";
import { FakeFrames, makeDom, markdownFor } from "./helpers/dom";
import { Body, fakeFetch, FakeSocket, jsonResponse, settle, sse, sseResponse, type Call } from "./helpers/fakes";
import { FakeModel } from "./helpers/model";

const CONFIG = '<script id="jupyter-config-data" type="application/json">{"baseUrl": "/user/x/", "token": "T"}</script>';
const LISTING = {
  default: "demo-sse",
  backends: [
    { name: "demo-sse", protocol: "openai", models: ["steady", "slow"], model: "steady" },
    { name: "demo-ws", protocol: "ws-json", models: [] },
  ],
};

interface Harness {
  model: FakeModel;
  controller: ChatController;
  view: ChatView;
  root: HTMLElement;
  frames: FakeFrames;
  calls: Call[];
  bodies: Body[];
  $: (sel: string) => HTMLElement | null;
  $$: (sel: string) => HTMLElement[];
  type: (text: string) => void;
}

/** A widget on a Jupyter page whose bridge answers from `chat` bodies. */
async function harness(options: { page?: string; model?: FakeModel; backends?: number } = {}): Promise<Harness> {
  const { window, document } = makeDom(`<!doctype html><html><head>${options.page ?? CONFIG}</head><body></body></html>`);
  const model = options.model ?? new FakeModel();
  const bodies: Body[] = [];
  const { fetch, calls } = fakeFetch((call) => {
    if (call.url.endsWith("streamchat/api/backends")) {
      return options.backends ? jsonResponse(options.backends, {}) : jsonResponse(200, LISTING);
    }
    if (call.url.endsWith("streamchat/api/clock")) return jsonResponse(200, { now_ms: 1_000_050 });
    if (call.url.endsWith("streamchat/api/chat")) {
      const body = new Body();
      bodies.push(body);
      return sseResponse(body);
    }
    return jsonResponse(404, {});
  });
  let t = 1_000_000;
  const now = (): number => (t += 0.5);
  const controller = new ChatController(model, {
    handleCustomMessages: true,
    env: {
      doc: document,
      fetch,
      now,
      clientEnv: { fetch, now, WebSocket: FakeSocket, origin: "http://localhost:8888", sleep: async () => undefined },
    },
  });
  const root = document.createElement("div");
  document.body.append(root);
  const frames = new FakeFrames();
  const view = new ChatView(root, model, controller, {
    markdown: markdownFor(window),
    scheduler: frames,
    copy: async () => undefined,
  });
  await settle(20);
  const $ = (sel: string): HTMLElement | null => root.querySelector<HTMLElement>(sel);
  const $$ = (sel: string): HTMLElement[] => [...root.querySelectorAll<HTMLElement>(sel)];
  const type = (text: string): void => {
    const prompt = $(".streamchat-prompt") as HTMLTextAreaElement;
    prompt.value = text;
    prompt.dispatchEvent(new window.KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  };
  return { model, controller, view, root, frames, calls, bodies, $, $$, type };
}

const START = { type: "start", seq: 0, recv_ms: 1_000_040, send_ms: 1_000_040.2, model: "steady", backend: "demo-sse", protocol: "openai", stream_id: "s1234567" };
const tok = (seq: number, text: string) => ({ type: "token", seq, recv_ms: 1_000_060 + seq, send_ms: 1_000_060.1 + seq, emit_ms: 1_000_059 + seq, text, chunks: 1 });

test("bridge discovery: backends, default backend, active path, toolbar", async () => {
  const h = await harness();
  assert.equal(h.model.get("active_path"), "bridge");
  assert.deepEqual(h.model.get("backends"), LISTING.backends);
  assert.equal(h.model.get("backend"), "demo-sse");
  assert.equal(h.calls[0]!.headers["authorization"], "token T");
  assert.ok(h.calls.filter((c) => c.url.endsWith("api/clock")).length >= 1);
  assert.ok(h.root.classList.contains("streamchat"));
  const backend = h.$(".streamchat-backend") as HTMLSelectElement;
  assert.deepEqual([...backend.options].map((o) => o.value), ["demo-sse", "demo-ws"]);
  assert.equal(backend.value, "demo-sse");
  const models = h.$(".streamchat-model") as HTMLSelectElement;
  assert.deepEqual([...models.options].map((o) => o.value), ["", "steady", "slow"]);
  assert.equal(h.$(".streamchat-path")!.textContent, "bridge · sse");
  assert.equal((h.$(".streamchat-leg") as HTMLSelectElement).value, "sse");
  backend.value = "demo-ws";
  backend.dispatchEvent(new h.root.ownerDocument.defaultView!.Event("change"));
  assert.equal(h.model.saved("backend"), "demo-ws");
});

test("a reply streams over SSE: history saved at start and end only, tokens painted per frame, stats shown", async () => {
  const h = await harness();
  h.model.saves = [];
  h.type("Hello?");
  await settle();
  // Start: the user message and a streaming placeholder, busy.
  assert.equal(h.model.saves.length, 1);
  const atStart = h.model.saved("history")!;
  assert.deepEqual(atStart.map((m) => [m.role, m.status, m.content]), [["user", "done", "Hello?"], ["assistant", "streaming", ""]]);
  assert.equal(h.model.saved("busy"), true);
  assert.equal((h.$(".streamchat-send") as HTMLButtonElement).disabled, true);
  assert.equal(h.$(".streamchat-stop")!.hidden, false);
  const request = h.calls.find((c) => c.url.endsWith("api/chat"))!;
  assert.deepEqual((request.body as { messages: unknown }).messages, [{ role: "user", content: "Hello?" }]);

  const body = h.bodies[0]!;
  body.push(sse(START) + sse(tok(1, "Hi ")));
  await settle();
  const content = h.$('.streamchat-message[data-role="assistant"] .streamchat-content')!;
  assert.equal(content.dataset.tokens, undefined, "nothing painted before the frame");
  h.frames.tick();
  assert.equal(content.dataset.tokens, "1");
  body.push(sse(tok(2, "there")) + sse(tok(3, "!")));
  await settle();
  h.frames.tick();
  assert.equal(content.dataset.tokens, "3");
  assert.match(content.textContent ?? "", /Hi there!/);
  assert.equal(h.model.saves.length, 1, "no history write per token");

  body.push(sse({ type: "usage", seq: 4, recv_ms: 1, completion_tokens: 3 }) + sse({ type: "done", seq: 5, recv_ms: 1_000_070, send_ms: 1_000_070.1 }));
  await settle();
  assert.equal(h.model.saves.length, 2);
  const reply = h.model.saved("history")![1]!;
  assert.equal(reply.status, "done");
  assert.equal(reply.content, "Hi there!");
  assert.equal(reply.protocol, "openai");
  assert.equal(reply.model, "steady");
  assert.equal(reply.path, "bridge");
  assert.equal(reply.leg, "sse");
  const timing = reply.timing!;
  assert.equal(timing.arrivals, 3);
  assert.equal(timing.tokens, 3);
  assert.equal(timing.events.length, 3);
  assert.deepEqual(timing.events.map((e) => e[5]), [3, 8, 9]);
  assert.ok(timing.clock_error_ms !== null && timing.clock_error_ms >= 0);
  assert.equal(h.model.saved("busy"), false);
  const el = h.$('.streamchat-message[data-role="assistant"]')!;
  assert.equal(el.dataset.status, "done");
  assert.match(h.$(".streamchat-stats")!.textContent!, /TTFT .* · 3 tok · 3 arrivals · 3 chunks · demo-sse · openai · bridge · sse · bridge .* · leg .* ± /);
  assert.ok(h.$(".streamchat-copy"));
  assert.equal(h.$(".streamchat-stop")!.hidden, true);
});

test("an error keeps the partial text, shows code + message, and Retry replaces the reply", async () => {
  const h = await harness();
  h.type("q");
  await settle();
  h.bodies[0]!.push(sse(START) + sse(tok(1, "partial")) + sse({ type: "error", seq: 2, recv_ms: 1, code: "upstream_closed", message: "backend hung up", retryable: true, partial: true }));
  await settle();
  const el = h.$('.streamchat-message[data-role="assistant"]')!;
  assert.equal(el.dataset.status, "error");
  assert.match(el.querySelector(".streamchat-content")!.textContent!, /partial/);
  assert.equal(el.querySelector(".streamchat-error-code")!.textContent, "upstream_closed");
  assert.equal(el.querySelector(".streamchat-error-message")!.textContent, "backend hung up");
  const saved = h.model.saved("history")!;
  assert.deepEqual(saved[1]!.error, { code: "upstream_closed", message: "backend hung up", retryable: true });

  (el.querySelector(".streamchat-retry") as HTMLButtonElement).click();
  await settle();
  const again = h.calls.filter((c) => c.url.endsWith("api/chat"));
  assert.equal(again.length, 2);
  assert.deepEqual((again[1]!.body as { messages: unknown }).messages, [{ role: "user", content: "q" }]);
  const history = h.model.saved("history")!;
  assert.deepEqual(history.map((m) => [m.role, m.status]), [["user", "done"], ["assistant", "streaming"]]);
  h.bodies[1]!.push(sse(START) + sse(tok(1, "ok")) + sse({ type: "done", seq: 2, recv_ms: 1 }));
  await settle();
  assert.deepEqual(h.$$(".streamchat-message").map((m) => m.dataset.status), ["done", "done"]);
  assert.equal(h.$(".streamchat-error"), null);
});

test("Stop cancels the stream: status cancelled, partial kept, Retry offered", async () => {
  const h = await harness();
  h.type("q");
  await settle();
  h.bodies[0]!.push(sse(START) + sse(tok(1, "so far")));
  await settle();
  (h.$(".streamchat-stop") as HTMLButtonElement).click();
  await settle();
  const reply = h.model.saved("history")![1]!;
  assert.equal(reply.status, "cancelled");
  assert.equal(reply.content, "so far");
  assert.equal(h.$('.streamchat-message[data-role="assistant"]')!.dataset.status, "cancelled");
  assert.ok(h.$(".streamchat-retry"));
});

test("Shift+Enter does not send; system prompt and failed replies shape the conversation", async () => {
  const h = await harness();
  const prompt = h.$(".streamchat-prompt") as HTMLTextAreaElement;
  prompt.value = "line";
  prompt.dispatchEvent(new h.root.ownerDocument.defaultView!.KeyboardEvent("keydown", { key: "Enter", shiftKey: true, bubbles: true }));
  await settle();
  assert.equal(h.bodies.length, 0);
  const history: Message[] = [
    { id: "1", role: "user", content: "a" },
    { id: "2", role: "assistant", content: "x", status: "error" },
    { id: "3", role: "assistant", content: "b", status: "cancelled" },
    { id: "4", role: "assistant", content: "ok" },
    { id: "5", role: "system", content: "note" },
    { id: "6", role: "user", content: "c", status: "done" },
  ];
  assert.deepEqual(conversation(history, "Be brief."), [
    { role: "system", content: "Be brief." },
    { role: "user", content: "a" },
    { role: "assistant", content: "ok" },
    { role: "user", content: "c" },
  ]);
});

/** Python's `send`, claimed by this page. */
async function pythonSend(h: Harness, id: string, text: string): Promise<void> {
  h.model.fromPython({ type: "send", id, text });
  const claim = h.model.sent.filter((m) => m.type === "claim" && m.id === id).pop();
  assert.ok(claim, "the page claims the prompt");
  assert.equal(typeof claim.view, "string");
  h.model.fromPython({ type: "claimed", id, view: claim.view });
  await settle();
}

test("Python send is claimed first; denied (or someone else's grant) streams nothing", async () => {
  const h = await harness();
  h.model.fromPython({ type: "send", id: "a", text: "x" });
  const claim = h.model.sent.find((m) => m.type === "claim")!;
  h.model.fromPython({ type: "claimed", id: "a", view: "another-page" });
  h.model.fromPython({ type: "denied", id: "a", view: claim.view });
  await settle();
  assert.equal(h.bodies.length, 0);
  assert.equal(h.controller.messages.length, 0);
});

test("Python commands: send → reply_done with index and status; history from Python re-renders", async () => {
  const h = await harness();
  await pythonSend(h, "req1", "from python");
  h.bodies[0]!.push(sse(START) + sse(tok(1, "yo")) + sse({ type: "done", seq: 2, recv_ms: 1 }));
  await settle();
  const done = h.model.sent.find((m) => m.type === "reply_done")!;
  assert.deepEqual([done.id, done.index, done.status], ["req1", 1, "done"]);
  // reply_done names the saved reply (Python may handle it before the state write).
  assert.equal(done.message_id, h.model.saved("history")![1]!.id);
  assert.equal(h.model.saved("history")![1]!.status, "done");
  const last = h.model.sent.filter((m) => m.type === "state" || m.type === "reply_done").pop()!;
  assert.equal(last.type, "reply_done", "sent after the history write");
  const states = h.model.sent.filter((m) => m.type === "state");
  assert.ok(states.every((m, i) => i === 0 || (m.rev as number) > (states[i - 1]!.rev as number)), "revisions grow");
  assert.ok(states.every((m) => typeof m.page === "string" && m.page === states[0]!.page));
  h.model.set("history", [{ id: "p1", role: "user", content: "replaced" }]);
  assert.deepEqual(h.$$(".streamchat-message").map((m) => m.textContent?.includes("replaced")), [true]);
});

test("Python stop cancels; replay plays a recorded reply with a marker and answers replay_done", async () => {
  const h = await harness();
  await pythonSend(h, "r", "go");
  h.bodies[0]!.push(sse(START) + sse(tok(1, "one ")) + sse(tok(2, "two")));
  await settle();
  h.model.fromPython({ type: "stop" });
  await settle();
  assert.equal(h.model.saved("history")![1]!.status, "cancelled");
  h.model.fromPython({ type: "replay", index: 1, speed: 1e9 });
  await new Promise((r) => setTimeout(r, 20));
  h.frames.tick();
  const replay = h.$(".streamchat-replay")!;
  assert.ok(replay);
  assert.equal(replay.dataset.replay, "1");
  assert.match(replay.querySelector(".streamchat-role")!.textContent!, /Replay/);
  assert.match(replay.querySelector(".streamchat-content")!.textContent!, /one two/);
  assert.equal(replay.dataset.status, "cancelled");
  assert.deepEqual(h.model.sent.find((m) => m.type === "replay_done"), { type: "replay_done", index: 1, status: "cancelled" });
  h.model.fromPython({ type: "replay", index: 0, speed: 1 });
  assert.deepEqual(h.model.sent.filter((m) => m.type === "replay_done").pop(), { type: "replay_done", index: 0, status: "error" });
});

test("no #jupyter-config-data: kernel path over the comm, events rendered the same", async () => {
  const h = await harness({ page: "" });
  assert.equal(h.model.get("active_path"), "kernel");
  assert.equal(h.$(".streamchat-path")!.textContent, "kernel");
  assert.equal(h.calls.length, 0);
  assert.ok(h.model.sent.some((m) => m.type === "kernel_backends"), "asks Python to fill backends");
  h.model.set("backend", "demo-sse");
  h.type("hi kernel");
  await settle();
  // Answer the clock pings, then the chat.
  for (let i = 0; i < 5; i += 1) {
    const ping = h.model.sent.filter((m) => m.type === "clock_ping")[i];
    assert.ok(ping, `ping ${i}`);
    h.model.fromPython({ type: "clock_pong", id: ping.id, now_ms: 2_000_000 });
    await settle();
  }
  const chat = h.model.sent.find((m) => m.type === "kernel_chat")!;
  assert.ok(chat);
  assert.equal(chat.backend, "demo-sse");
  assert.deepEqual(chat.messages, [{ role: "user", content: "hi kernel" }]);
  const id = chat.id as string;
  h.model.fromPython({ type: "kernel_events", id, events: [{ type: "start", seq: 0, recv_ms: 1 }, { type: "token", seq: 1, recv_ms: 2_000_001, text: "from ", chunks: 1 }] });
  h.frames.tick();
  h.model.fromPython({ type: "kernel_events", id, events: [{ type: "token", seq: 1, recv_ms: 2, text: "from " }, { type: "token", seq: 3, recv_ms: 2_000_003, text: "kernel", chunks: 2 }, { type: "done", seq: 4, recv_ms: 3 }] });
  await settle();
  const reply = h.model.saved("history")![1]!;
  assert.equal(reply.content, "from kernel");
  assert.equal(reply.path, "kernel");
  assert.equal(reply.status, "done");
  assert.equal(reply.timing!.chunks, 3);
  assert.equal(reply.timing!.arrivals, 2);
  assert.ok(reply.timing!.clock_error_ms !== null);
  assert.match(h.$(".streamchat-stats")!.textContent!, /comm .* ± /);
});

test("kernel path: Stop sends kernel_cancel; a broken event is a protocol error", async () => {
  const h = await harness({ page: "", model: new FakeModel({ path: "kernel" }) });
  h.type("x");
  await new Promise((r) => setTimeout(r, 600)); // no clock_pong: alignment gives up
  await settle();
  const chat = h.model.sent.find((m) => m.type === "kernel_chat")!;
  assert.ok(chat);
  (h.$(".streamchat-stop") as HTMLButtonElement).click();
  await settle();
  assert.deepEqual(h.model.sent.find((m) => m.type === "kernel_cancel"), { type: "kernel_cancel", id: chat.id });
  const reply = h.model.saved("history")![1]!;
  assert.equal(reply.status, "cancelled");
  assert.equal(reply.timing!.clock_error_ms, null);

  h.type("y");
  await new Promise((r) => setTimeout(r, 600)); // the clock alignment is tried once more
  await settle();
  const chat2 = h.model.sent.filter((m) => m.type === "kernel_chat")[1]!;
  h.model.fromPython({ type: "kernel_events", id: chat2.id, events: [{ type: "bogus", seq: 0, recv_ms: 0 }] });
  await settle();
  const failed = h.model.saved("history")![3]!;
  assert.equal(failed.status, "error");
  assert.equal(failed.error!.code, "protocol_error");
  assert.match(failed.error!.message, /unknown event type "bogus"/);
});

test("the bridge refusing api/backends falls back to the kernel; path=bridge then errors clearly", async () => {
  const h = await harness({ backends: 403, model: new FakeModel({ path: "bridge" }) });
  assert.equal(h.model.get("active_path"), "kernel");
  assert.match(h.$(".streamchat-path")!.title, /HTTP 403/);
  h.type("x");
  await settle();
  const reply = h.model.saved("history")![1]!;
  assert.equal(reply.status, "error");
  assert.equal(reply.error!.code, "connect_failed");
  assert.match(reply.error!.message, /no bridge is reachable/);
});

test("a late echo of the reply's start does not bring the streaming placeholder back", async () => {
  const h = await harness();
  h.type("Hello?");
  await settle();
  const atStart = structuredClone(h.model.saved("history")!);
  h.bodies[0]!.push(sse(START) + sse(tok(1, "Hi there")) + sse({ type: "done", seq: 2, recv_ms: 1 }));
  await settle();
  h.frames.tick();
  assert.equal(h.$('.streamchat-message[data-role="assistant"]')!.dataset.status, "done");
  // Python's echo of the first write arrives now (a new object, as from the kernel).
  h.model.set("history", structuredClone(atStart));
  assert.equal(h.$('.streamchat-message[data-role="assistant"]')!.dataset.status, "done");
  assert.match(h.$('.streamchat-message[data-role="assistant"] .streamchat-content')!.textContent!, /Hi there/);
  // A history Python itself wrote (e.g. clear()) is taken.
  h.model.set("history", []);
  assert.equal(h.$$(".streamchat-message").length, 0);
});

test("history goes to Python as tails: a reply's end sends that reply, not the conversation", async () => {
  const h = await harness();
  const states = (): Array<Record<string, unknown>> => h.model.sent.filter((m) => m.type === "state" && "history" in m);
  for (const [i, prompt] of ["One?", "Two?"].entries()) {
    h.type(prompt);
    await settle();
    h.bodies[i]!.push(sse(START) + sse(tok(1, `answer ${i}`)) + sse({ type: "done", seq: 2, recv_ms: 1 }));
    await settle();
  }
  const tails = states().map((m) => m.history as { start: number; after: string | null; messages: Message[] });
  assert.deepEqual(tails.map((t) => [t.start, t.messages.length]), [[0, 2], [1, 1], [2, 2], [3, 1]]);
  const saved = h.model.saved("history")!;
  assert.deepEqual(saved.map((m) => [m.role, m.status]), [["user", "done"], ["assistant", "done"], ["user", "done"], ["assistant", "done"]]);
  assert.equal(tails[3]!.after, saved[2]!.id, "each tail names the message it follows");
});

test("history tails from Python: another page's are applied, a misfit asks for all, resync sends all", async () => {
  const h = await harness();
  const other = { id: "o1", role: "user", content: "from another page", status: "done" };
  h.model.fromPython({ type: "history_tail", page: "another", start: 0, after: null, messages: [other] });
  assert.deepEqual(h.$$(".streamchat-message").map((m) => m.textContent?.includes("from another page")), [true]);
  const reply = { id: "o2", role: "assistant", content: "and its reply", status: "done" };
  h.model.fromPython({ type: "history_tail", page: "another", start: 1, after: "o1", messages: [reply] });
  assert.equal(h.$$(".streamchat-message").length, 2);
  h.model.fromPython({ type: "history_tail", page: "another", start: 5, after: "zz", messages: [] });
  assert.ok(h.model.sent.some((m) => m.type === "history_resync"), "a tail that does not fit asks for all");
  const page = (h.model.sent.find((m) => m.type === "state") as { page: string }).page;
  h.model.fromPython({ type: "history_tail", page, start: 0, after: null, messages: [] });
  assert.equal(h.$$(".streamchat-message").length, 2, "our own tail, passed back, is ignored");
  h.model.python = [];
  h.model.fromPython({ type: "history_resync", page });
  const last = h.model.sent.filter((m) => m.type === "state").pop() as { history: { start: number; messages: Message[] } };
  assert.equal(last.history.start, 0);
  assert.deepEqual(last.history.messages.map((m) => m.id), ["o1", "o2"]);
});
