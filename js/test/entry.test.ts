import { test } from "node:test";
import assert from "node:assert/strict";
import widget from "../src/widget";
import type { ChatState, Model } from "../src/model";
import { makeDom } from "./helpers/dom";
import { settle } from "./helpers/fakes";
import { FakeModel } from "./helpers/model";

/** What anywidget hands each call: a fresh object bound to the same model. */
function proxy(model: FakeModel): Model<ChatState> & { get(name: "layout"): object } {
  return {
    get: model.get.bind(model),
    set: model.set.bind(model),
    save_changes: model.save_changes.bind(model),
    send: model.send.bind(model),
    on: model.on.bind(model),
    off: model.off.bind(model),
  } as Model<ChatState> & { get(name: "layout"): object };
}

test("default export: initialize once per model, any number of views share its controller", async () => {
  const { window, document } = makeDom(); // no #jupyter-config-data: kernel path, no fetch
  const g = globalThis as unknown as { document?: Document };
  const before = g.document;
  g.document = document;
  try {
    const model = new FakeModel({ backend: "demo-sse", path: "kernel" });
    const cleanupModel = widget.initialize({ model: proxy(model) });
    const a = document.createElement("div");
    const b = document.createElement("div");
    document.body.append(a, b);
    const cleanupA = widget.render({ model: proxy(model), el: a });
    const cleanupB = widget.render({ model: proxy(model), el: b });
    await settle();
    assert.ok(a.classList.contains("streamchat") && b.classList.contains("streamchat"));
    model.fromPython({ type: "send", id: "once", text: "hello" });
    const claims = model.sent.filter((m) => m.type === "claim");
    assert.equal(claims.length, 1, "one claim per page, not per view");
    model.fromPython({ type: "claimed", id: "once", view: claims[0]!.view });
    await new Promise((r) => setTimeout(r, 600)); // kernel clock ping times out (no Python here)
    const chats = model.sent.filter((m) => m.type === "kernel_chat");
    assert.equal(chats.length, 1, "a Python command runs once, not once per view");
    const id = chats[0]!.id;
    model.fromPython({ type: "kernel_events", id, events: [{ type: "token", seq: 0, recv_ms: 1, text: "hey" }] });
    await new Promise((r) => window.requestAnimationFrame(() => r(undefined)));
    await new Promise((r) => setTimeout(r, 20));
    for (const el of [a, b]) {
      const content = el.querySelector<HTMLElement>('.streamchat-message[data-role="assistant"] .streamchat-content')!;
      assert.equal(content.dataset.tokens, "1");
      assert.match(content.textContent!, /hey/);
    }
    model.fromPython({ type: "kernel_events", id, events: [{ type: "done", seq: 1, recv_ms: 2 }] });
    await settle();
    const done = model.sent.filter((m) => m.type === "reply_done");
    assert.deepEqual(
      done.map(({ type, id, index, status }) => ({ type, id, index, status })),
      [{ type: "reply_done", id: "once", index: 1, status: "done" }],
    );
    const saved = model.saved("history")!;
    assert.equal(done[0]!.message_id, saved[1]!.id, "reply_done names the saved reply");
    assert.equal(saved[1]!.content, "hey");
    cleanupA();
    cleanupB();
    cleanupModel();
  } finally {
    g.document = before;
  }
});
