/**
 * One view of a chat widget: the DOM and its controls, driven by a
 * {@link ChatController}.  Several views of one model share the controller;
 * each renders the live reply with its own frame-batched renderer.
 *
 * Stable hooks for tests: `.streamchat` root,
 * `.streamchat-message[data-role][data-status][data-index]`,
 * `.streamchat-content[data-tokens]`, `.streamchat-prompt`, `.streamchat-send`,
 * `.streamchat-stop`, `.streamchat-retry`, `.streamchat-copy`,
 * `.streamchat-backend`, `.streamchat-model`, `.streamchat-leg`,
 * `.streamchat-path`, `.streamchat-stats`, `.streamchat-error`,
 * `.streamchat-replay`.
 */

import type { ChatController, ControllerChange, Replay } from "./controller";
import type { MarkdownToHtml } from "./markdown";
import { pushState, type BackendInfo, type LegSetting, type Message, type Model } from "./model";
import { renderMarkdownInto, StreamRenderer, type FrameScheduler } from "./render";
import { messageStats } from "./stats";

export interface ViewOptions {
  markdown: MarkdownToHtml;
  scheduler: FrameScheduler;
  /** Copy text to the clipboard (injectable for tests). */
  copy?: (text: string) => Promise<void>;
}

type Attrs = Record<string, string>;

/** Create an element with a class, attributes and children. */
function h<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  className: string,
  attrs: Attrs = {},
  children: Array<Node | string> = [],
): HTMLElementTagNameMap[K] {
  const el = doc.createElement(tag);
  if (className) el.className = className;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const child of children) el.append(child);
  return el;
}

const ROLE_LABEL: Record<Message["role"], string> = { user: "You", assistant: "Assistant", system: "System" };

const LEGS: Array<[LegSetting, string]> = [
  ["auto", "auto"],
  ["sse", "SSE"],
  ["ws", "WebSocket"],
];

/** What a message element currently shows, to skip needless re-renders. */
interface Entry {
  el: HTMLElement;
  content: HTMLElement;
  shown: string | null;
  /** What the decorations were built from (see {@link ChatView.decorate}). */
  decorated: string | null;
  renderer: StreamRenderer | null;
}

export class ChatView {
  private readonly doc: Document;
  private readonly list: HTMLElement;
  private readonly prompt: HTMLTextAreaElement;
  private readonly sendButton: HTMLButtonElement;
  private readonly stopButton: HTMLButtonElement;
  private readonly backendSelect: HTMLSelectElement;
  private readonly modelSelect: HTMLSelectElement;
  private readonly legSelect: HTMLSelectElement;
  private readonly pathBadge: HTMLElement;
  private readonly titleEl: HTMLElement;
  private readonly entries = new Map<string, Entry>();
  private readonly replayEls = new Map<string, { el: HTMLElement; renderer: StreamRenderer }>();
  private readonly cleanups: Array<() => void> = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly model: Model,
    private readonly controller: ChatController,
    private readonly options: ViewOptions,
  ) {
    const doc = root.ownerDocument;
    this.doc = doc;
    root.classList.add("streamchat");
    // Keys typed here are ours, not JupyterLab's shortcuts (Shift+Enter runs a cell).
    root.setAttribute("data-lm-suppress-shortcuts", "true");

    this.titleEl = h(doc, "div", "streamchat-title");
    this.backendSelect = h(doc, "select", "streamchat-backend", { "aria-label": "Backend", title: "Backend" });
    this.modelSelect = h(doc, "select", "streamchat-model", { "aria-label": "Model", title: "Model" });
    this.legSelect = h(doc, "select", "streamchat-leg", { "aria-label": "Browser leg", title: "Browser leg" });
    for (const [value, label] of LEGS) this.legSelect.append(h(doc, "option", "", { value }, [label]));
    this.pathBadge = h(doc, "span", "streamchat-path");
    const toolbar = h(doc, "div", "streamchat-toolbar", {}, [
      this.titleEl,
      this.backendSelect,
      this.modelSelect,
      this.legSelect,
      this.pathBadge,
    ]);
    this.list = h(doc, "div", "streamchat-messages", { role: "log", "aria-live": "polite" });
    this.prompt = h(doc, "textarea", "streamchat-prompt", {
      rows: "2",
      placeholder: "Message (Enter to send, Shift+Enter for a new line)",
      "aria-label": "Prompt",
    });
    this.sendButton = h(doc, "button", "streamchat-send", { type: "button" }, ["Send"]);
    this.stopButton = h(doc, "button", "streamchat-stop", { type: "button" }, ["Stop"]);
    const input = h(doc, "div", "streamchat-input", {}, [this.prompt, this.sendButton, this.stopButton]);
    root.replaceChildren(toolbar, this.list, input);

    this.listen(this.prompt, "keydown", (e) => this.onKey(e as KeyboardEvent));
    this.listen(this.sendButton, "click", () => this.submit());
    this.listen(this.stopButton, "click", () => this.controller.stop());
    this.listen(this.backendSelect, "change", () => this.setTrait("backend", this.backendSelect.value));
    this.listen(this.modelSelect, "change", () => this.setTrait("model", this.modelSelect.value));
    this.listen(this.legSelect, "change", () => this.setTrait("leg", this.legSelect.value as LegSetting));

    for (const name of ["backends", "backend", "model", "leg", "title", "busy", "active_path"]) {
      const cb = (): void => this.renderToolbar();
      model.on(`change:${name}`, cb);
      this.cleanups.push(() => model.off(`change:${name}`, cb));
    }
    this.cleanups.push(controller.subscribe((change) => this.onChange(change)));
    this.renderToolbar();
    this.syncMessages();
  }

  dispose(): void {
    for (const cleanup of this.cleanups) cleanup();
    for (const entry of this.entries.values()) entry.renderer?.dispose();
    for (const r of this.replayEls.values()) r.renderer.dispose();
    this.entries.clear();
    this.replayEls.clear();
  }

  // ------------------------------------------------------------ events

  private listen(target: EventTarget, type: string, handler: (e: Event) => void): void {
    target.addEventListener(type, handler);
    this.cleanups.push(() => target.removeEventListener(type, handler));
  }

  private setTrait<K extends "backend" | "model" | "leg">(name: K, value: string): void {
    pushState(this.model, { [name]: value });
  }

  private onKey(e: KeyboardEvent): void {
    e.stopPropagation();
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    }
  }

  private submit(): void {
    const text = this.prompt.value;
    if (text.trim() === "" || this.controller.busy || this.model.get("busy") === true) return;
    this.prompt.value = "";
    this.controller.send(text);
  }

  private onChange(change: ControllerChange): void {
    switch (change.kind) {
      case "messages":
        this.syncMessages();
        break;
      case "status":
        this.renderToolbar();
        break;
      case "reply-start":
        this.syncMessages();
        this.renderToolbar();
        break;
      case "token":
        this.entryAt(change.index)?.renderer?.append(change.text);
        break;
      case "reply-end": {
        const entry = this.entryAt(change.index);
        if (entry?.renderer) {
          entry.renderer.finish();
          entry.renderer = null;
          entry.shown = this.controller.messages[change.index]?.content ?? null;
        }
        this.syncMessages();
        this.renderToolbar();
        break;
      }
      case "replay-start":
        this.startReplay(change.replay);
        break;
      case "replay-token":
        this.replayEls.get(change.replay.id)?.renderer.append(change.text);
        break;
      case "replay-end":
        this.endReplay(change.replay);
        break;
    }
  }

  // ------------------------------------------------------------ toolbar

  private renderToolbar(): void {
    const title = this.model.get("title") ?? "";
    this.titleEl.textContent = title;
    this.titleEl.hidden = title === "";

    const backends: BackendInfo[] = Array.isArray(this.model.get("backends")) ? this.model.get("backends") : [];
    const current = this.model.get("backend") ?? "";
    const names = backends.map((b) => b.name);
    if (current !== "" && !names.includes(current)) names.unshift(current);
    fillSelect(this.doc, this.backendSelect, names.map((n) => [n, n]), current);
    this.backendSelect.disabled = names.length <= 1 && current !== "";

    const info = backends.find((b) => b.name === current);
    const models = info?.models ?? [];
    const chosen = this.model.get("model") ?? "";
    const defaultLabel = info?.model ? `default (${info.model})` : "default model";
    const modelOptions: Array<[string, string]> = [["", defaultLabel], ...models.map((m): [string, string] => [m, m])];
    if (chosen !== "" && !models.includes(chosen)) modelOptions.push([chosen, chosen]);
    fillSelect(this.doc, this.modelSelect, modelOptions, chosen);
    this.modelSelect.hidden = models.length === 0 && chosen === "";

    this.legSelect.value = this.model.get("leg") ?? "auto";
    this.legSelect.disabled = this.controller.activePath === "kernel";

    this.pathBadge.textContent = this.controller.pathLabel();
    this.pathBadge.dataset.path = this.controller.activePath;
    this.pathBadge.title = this.controller.pathReason
      ? `kernel path: ${this.controller.pathReason}`
      : "how replies reach this page";

    // Busy here, or elsewhere (the kernel streaming a prompt no page claimed).
    const busy = this.controller.busy || this.model.get("busy") === true;
    this.root.dataset.busy = String(busy);
    this.sendButton.disabled = busy;
    this.stopButton.hidden = !busy; // ours, or the kernel's (see ChatController.stop)
  }

  // ------------------------------------------------------------ messages

  private entryAt(index: number): Entry | undefined {
    const message = this.controller.messages[index];
    return message ? this.entries.get(message.id) : undefined;
  }

  /** Bring the list in line with the controller's messages (cheap when unchanged). */
  private syncMessages(): void {
    const messages = this.controller.messages;
    const seen = new Set<string>();
    let cursor: ChildNode | null = this.list.firstChild;
    messages.forEach((message, index) => {
      seen.add(message.id);
      let entry = this.entries.get(message.id);
      if (entry === undefined) {
        entry = this.createEntry(message);
        this.entries.set(message.id, entry);
      }
      this.updateContent(entry, message, index);
      this.decorate(entry, message, index);
      if (entry.el !== cursor) this.list.insertBefore(entry.el, cursor);
      else cursor = cursor.nextSibling;
    });
    for (const [id, entry] of this.entries) {
      if (!seen.has(id)) {
        entry.renderer?.dispose();
        entry.el.remove();
        this.entries.delete(id);
      }
    }
    // Replays stay after the history until the controller drops them.
    const replays = new Set(this.controller.replays.map((r) => r.id));
    for (const [id, r] of this.replayEls) {
      if (replays.has(id)) {
        this.list.append(r.el);
      } else {
        r.renderer.dispose();
        r.el.remove();
        this.replayEls.delete(id);
      }
    }
  }

  private createEntry(message: Message): Entry {
    const doc = this.doc;
    const content = h(doc, "div", "streamchat-content");
    const el = h(doc, "div", "streamchat-message", { "data-role": message.role, "data-id": message.id }, [
      h(doc, "div", "streamchat-role", {}, [ROLE_LABEL[message.role] ?? message.role]),
      content,
    ]);
    return { el, content, shown: null, decorated: null, renderer: null };
  }

  private updateContent(entry: Entry, message: Message, index: number): void {
    const live = this.controller.live;
    if (live !== null && live.index === index && message.status === "streaming") {
      if (entry.renderer === null) {
        entry.content.replaceChildren();
        entry.renderer = new StreamRenderer(entry.content, {
          scheduler: this.options.scheduler,
          markdown: this.options.markdown,
        });
        if (live.text !== "") entry.renderer.append(live.text); // a view opened mid-reply
      }
      return;
    }
    if (entry.renderer !== null) return; // finishing: reply-end handles it
    if (entry.shown === message.content) return;
    entry.shown = message.content;
    if (message.role === "assistant") renderMarkdownInto(entry.content, message.content, this.options.markdown);
    else entry.content.textContent = message.content;
  }

  /** Status, meta, error block, stats and buttons of one message. */
  private decorate(entry: Entry, message: Message, index: number): void {
    const { el } = entry;
    const key = [
      index,
      message.status,
      this.controller.canRetry(index),
      message.timing?.duration_ms,
      message.error?.code,
      message.error?.message,
      message.leg,
      message.content.length,
    ].join("|");
    if (entry.decorated === key) return;
    entry.decorated = key;
    el.dataset.index = String(index);
    el.dataset.status = message.status ?? "done";
    if (message.path) el.dataset.path = message.path;
    if (message.leg) el.dataset.leg = message.leg;
    el.querySelectorAll(":scope > .streamchat-error, :scope > .streamchat-footer").forEach((n) => n.remove());
    if (message.role !== "assistant") return;
    const doc = this.doc;
    const failed = message.status === "error" || message.status === "cancelled";
    if (failed) {
      const code = message.error?.code ?? message.status ?? "error";
      const text = message.error?.message ?? (message.status === "cancelled" ? "stopped" : "failed");
      const block = h(doc, "div", "streamchat-error", { role: "alert", "data-code": code }, [
        h(doc, "span", "streamchat-error-code", {}, [code]),
        h(doc, "span", "streamchat-error-message", {}, [text]),
      ]);
      if (this.controller.canRetry(index)) {
        const retry = h(doc, "button", "streamchat-retry", { type: "button" }, ["Retry"]);
        retry.addEventListener("click", () => this.controller.retry(index));
        block.append(retry);
      }
      el.append(block);
    }
    if (message.status === "streaming") return;
    const footer = h(doc, "div", "streamchat-footer");
    const stats = messageStats(message);
    if (stats !== null) footer.append(h(doc, "span", "streamchat-stats", { title: stats.title }, [stats.text]));
    const copy = h(doc, "button", "streamchat-copy", { type: "button", title: "Copy the reply" }, ["Copy"]);
    copy.addEventListener("click", () => {
      void this.copy(message.content).then(
        () => flash(copy, "Copied"),
        () => flash(copy, "Copy failed"),
      );
    });
    footer.append(copy);
    el.append(footer);
  }

  private copy(text: string): Promise<void> {
    if (this.options.copy) return this.options.copy(text);
    const clipboard = this.doc.defaultView?.navigator.clipboard;
    if (clipboard) return clipboard.writeText(text);
    return Promise.reject(new Error("no clipboard"));
  }

  // ------------------------------------------------------------ replays

  private startReplay(replay: Replay): void {
    const doc = this.doc;
    const content = h(doc, "div", "streamchat-content");
    const el = h(
      doc,
      "div",
      "streamchat-message streamchat-replay",
      { "data-role": "assistant", "data-status": "streaming", "data-replay": String(replay.index) },
      [h(doc, "div", "streamchat-role", {}, [`Replay of #${replay.index} at ${replay.speed}×`]), content],
    );
    const renderer = new StreamRenderer(content, { scheduler: this.options.scheduler, markdown: this.options.markdown });
    if (replay.text !== "") renderer.append(replay.text);
    this.replayEls.set(replay.id, { el, renderer });
    this.list.append(el);
  }

  private endReplay(replay: Replay): void {
    const r = this.replayEls.get(replay.id);
    if (!r) return;
    r.renderer.finish();
    r.el.dataset.status = replay.message.status ?? "done";
    const stats = messageStats(replay.message);
    if (stats !== null) {
      r.el.append(
        h(this.doc, "div", "streamchat-footer", {}, [h(this.doc, "span", "streamchat-stats", { title: stats.title }, [stats.text])]),
      );
    }
  }
}

/** Replace a select's options (only when they differ) and select `value`. */
function fillSelect(doc: Document, select: HTMLSelectElement, options: Array<[string, string]>, value: string): void {
  const same =
    select.options.length === options.length &&
    options.every(([v, label], i) => select.options[i]!.value === v && select.options[i]!.text === label);
  if (!same) select.replaceChildren(...options.map(([v, label]) => h(doc, "option", "", { value: v }, [label])));
  select.value = value;
}

/** Show `text` on a button for a moment. */
function flash(button: HTMLElement, text: string): void {
  const before = button.textContent;
  button.textContent = text;
  setTimeout(() => (button.textContent = before), 1200);
}
