/**
 * The chat logic of one widget model, shared by all its views: sending a
 * prompt, streaming the reply over the bridge (SSE / WebSocket) or the kernel
 * comm, recording its timing, writing `history` back (when a reply starts and
 * when it ends, never per token), and the Python → JS commands
 * (`send`, `stop`, `replay`).
 *
 * Views subscribe to {@link ChatController.subscribe} and get told what
 * changed; they never talk to the network themselves.
 *
 * Custom messages with Python (besides the kernel path's, see kernel.ts):
 *   Python → JS  `{"type":"send","id","text"}`      a prompt, as if typed
 *   JS → Python  `{"type":"claim","id","view"}`      this page offers to stream it
 *   Python → JS  `{"type":"claimed"|"denied","id","view"}`
 *   JS → Python  `{"type":"reply_done","id","index","status","message_id"}`  after history is saved
 *                (Python answers `send` once its history holds that message, final)
 *   JS → Python  `{"type":"state","page","rev","state":{...},"history"?:{start,after,messages}}`
 *                traitlet writes (see pushState)
 *   Python → JS  `{"type":"history_tail","page","start","after","messages"}`  history changed
 *                elsewhere (another page, or the kernel's own replies)
 *   both ways    `{"type":"history_resync","page"?}`  a tail did not fit: send all of it
 *   Python → JS  `{"type":"stop"}`
 *   JS → Python  `{"type":"stop_kernel"}`           stop the reply the kernel streams for Python
 *   Python → JS  `{"type":"replay","index","speed"}`
 *   JS → Python  `{"type":"replay_done","index","status"}`
 *   JS → Python  `{"type":"kernel_backends"}`        kernel path: please fill `backends`
 */

import { discoverBridge, refreshClock, type Bridge, type Discovery } from "./bridge";
import { newStreamId, openStream, readXsrfCookie, yieldToMain, type ChatMessage, type ChatRequest, type Leg, type ReceiveInfo } from "./client";
import { browserNowMs, measureClockWith, type ClockAlignment, type FetchLike } from "./clock";
import type { StreamEvent, TerminalEvent } from "./events";
import { KernelChannel } from "./kernel";
import {
  applyTail,
  asRecord,
  firstChange,
  PAGE,
  pushState,
  type HistoryTail,
  type Message,
  type MessageStatus,
  type Model,
  type WritableState,
} from "./model";
import { textEnds, TimingRecorder } from "./timing";

/** What views are told. */
export type ControllerChange =
  | { kind: "messages" }
  | { kind: "status" }
  | { kind: "reply-start"; index: number }
  | { kind: "token"; index: number; text: string }
  | { kind: "reply-end"; index: number }
  | { kind: "replay-start"; replay: Replay }
  | { kind: "replay-token"; replay: Replay; text: string }
  | { kind: "replay-end"; replay: Replay };

/** A recorded reply being played back (not part of history). */
export interface Replay {
  id: string;
  /** The history index it plays. */
  index: number;
  speed: number;
  message: Message;
  text: string;
  done: boolean;
}

/** The stream in flight. */
interface Live {
  index: number;
  text: string;
  cancel: () => void;
  /** Python's `send` id, answered with `reply_done`. */
  requestId: string | null;
}

export interface ControllerEnv {
  doc: Document;
  fetch: FetchLike;
  now: () => number;
  /** A new task (see client.ts yieldToMain). */
  yieldToMain: () => Promise<void>;
  /** Passed to openStream (tests inject fakes). */
  clientEnv?: Parameters<typeof openStream>[0]["env"];
}

/** Clock offsets older than this are measured again before a send. */
const CLOCK_MAX_AGE_MS = 10 * 60 * 1000;

/** The page's environment, for whatever `env` does not give. */
function withDefaults(env: Partial<ControllerEnv> = {}): ControllerEnv {
  return {
    doc: env.doc ?? document,
    fetch: env.fetch ?? ((input, init) => fetch(input, init)),
    now: env.now ?? browserNowMs,
    yieldToMain: env.yieldToMain ?? yieldToMain,
    clientEnv: env.clientEnv,
  };
}

/** A short id for messages. */
function messageId(): string {
  return newStreamId().slice(0, 12);
}

/**
 * The conversation sent for a reply: the system prompt, then the user and
 * assistant messages that completed (failed, stopped and streaming replies are
 * left out, as the kernel path does).
 */
export function conversation(history: readonly Message[], systemPrompt: string): ChatMessage[] {
  const out: ChatMessage[] = [];
  if (systemPrompt !== "") out.push({ role: "system", content: systemPrompt });
  for (const m of history) {
    if (m.role !== "user" && m.role !== "assistant") continue;
    if (m.status !== undefined && m.status !== "done") continue;
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

/** What identifies a history value cheaply: each message's id, status and sizes. */
export function historySignature(history: readonly Message[]): string {
  return JSON.stringify(history.map((m) => [m.id, m.status ?? "", m.content.length, m.timing?.events.length ?? -1]));
}

/** Status of a reply from its terminal event. */
export function statusOf(event: TerminalEvent): MessageStatus {
  if (event.type === "done") return "done";
  return event.code === "cancelled" ? "cancelled" : "error";
}

export class ChatController {
  messages: Message[];
  live: Live | null = null;
  replays: Replay[] = [];
  /** The path in use once known, and why the bridge is not. */
  activePath: "bridge" | "kernel" | "" = "";
  pathReason = "";
  /** The leg of the last (or current) bridge stream. */
  activeLeg: Leg | null = null;

  private readonly env: ControllerEnv;
  private readonly listeners = new Set<(change: ControllerChange) => void>();
  private readonly kernel: KernelChannel;
  private readonly discovery: Promise<Discovery>;
  private bridge: Bridge | null = null;
  private kernelClock: Promise<ClockAlignment | null> | null = null;
  private kernelClockTries = 0;
  /** `auto` found no WebSocket once: stop waiting for one. */
  private autoLeg: Leg | null = null;
  private queue: Array<{ text: string; requestId: string | null }> = [];
  /** Prompts from Python's `send`, waiting for `claimed` / `denied`. */
  private readonly claims = new Map<string, string>();
  /** Names this page in claims. */
  private readonly instanceId = messageId();
  private lastWritten: unknown = null;
  /** The history as Python has it from this page (see writeHistory). */
  private written: readonly Message[];
  /** Replies ended but not saved yet (see finishReply). */
  private saving = 0;
  /** Signatures of the last histories written here (see onHistoryChange). */
  private readonly ownWrites: string[] = [];
  private disposed = false;
  private readonly cleanups: Array<() => void> = [];

  constructor(
    private readonly model: Model,
    options: { handleCustomMessages: boolean; env?: Partial<ControllerEnv> },
  ) {
    this.env = withDefaults(options.env);
    this.messages = (model.get("history") ?? []).map((m) => ({ ...m }));
    this.written = model.get("history") ?? [];
    this.kernel = new KernelChannel((content) => model.send(content), this.env.now);

    const onHistory = (): void => this.onHistoryChange();
    const onPath = (): void => void this.resolvePath().then(() => this.emit({ kind: "status" }));
    model.on("change:history", onHistory);
    model.on("change:path", onPath);
    this.cleanups.push(() => model.off("change:history", onHistory), () => model.off("change:path", onPath));
    // Kernel replies must reach the kernel channel even when another instance
    // handles commands, so routing is split: ours always, commands if asked.
    const onCustom = (content: unknown): void => this.onCustom(content, options.handleCustomMessages);
    model.on("msg:custom", onCustom);
    this.cleanups.push(() => model.off("msg:custom", onCustom));

    this.discovery = discoverBridge({ doc: this.env.doc, fetch: this.env.fetch, now: this.env.now });
    void this.resolvePath().then(() => this.emit({ kind: "status" }));
  }

  subscribe(listener: (change: ControllerChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get busy(): boolean {
    return this.live !== null;
  }

  /** "bridge · sse", "kernel", "connecting…" for the path badge. */
  pathLabel(): string {
    if (this.activePath === "") return "connecting…";
    if (this.activePath === "kernel") return "kernel";
    const leg = this.activeLeg ?? this.model.get("leg");
    return `bridge · ${leg}`;
  }

  /** Send a prompt as if typed (queued while a reply streams). */
  send(text: string, requestId: string | null = null): void {
    if (text.trim() === "") {
      if (requestId !== null) this.model.send({ type: "reply_done", id: requestId, index: -1, status: "error" });
      return;
    }
    this.queue.push({ text, requestId });
    if (this.live === null) this.next();
  }

  /**
   * Stop the reply in flight (it ends as `cancelled`).  With none here but the
   * model busy, the kernel is streaming a prompt sent from Python: ask it to stop.
   */
  stop(): void {
    if (this.live !== null) this.live.cancel();
    else if (this.model.get("busy") === true) this.model.send({ type: "stop_kernel" });
  }

  /** Whether the reply at `index` can be retried (the last one, failed). */
  canRetry(index: number): boolean {
    const m = this.messages[index];
    return (
      this.live === null &&
      index === this.messages.length - 1 &&
      m !== undefined &&
      m.role === "assistant" &&
      (m.status === "error" || m.status === "cancelled")
    );
  }

  /** Resend the user message before the failed reply at `index`, replacing it. */
  retry(index: number): void {
    if (!this.canRetry(index)) return;
    this.messages = this.messages.slice(0, index);
    this.emit({ kind: "messages" });
    void this.startReply(null);
  }

  /** Play the recorded reply at `index` with its original timing / `speed`. */
  replay(index: number, speed = 1): void {
    const message = this.messages[index];
    const rows = message?.timing?.events;
    if (message === undefined || message.role !== "assistant" || rows === undefined) {
      this.model.send({ type: "replay_done", index, status: "error" });
      return;
    }
    const replay: Replay = {
      id: messageId(),
      index,
      speed: speed > 0 ? speed : 1,
      message,
      text: "",
      done: false,
    };
    this.replays.push(replay);
    this.emit({ kind: "replay-start", replay });
    const sent = message.timing!.sent_ms;
    const ends = textEnds(rows, message.content.length);
    const start = this.env.now();
    let row = 0;
    const tick = (): void => {
      if (this.disposed) return;
      const elapsed = (this.env.now() - start) * replay.speed;
      let upTo = replay.text.length;
      while (row < rows.length && rows[row]![4] - sent <= elapsed) {
        upTo = Math.max(upTo, ends[row]!);
        row += 1;
      }
      if (row >= rows.length) upTo = message.content.length;
      if (upTo > replay.text.length) {
        const text = message.content.slice(replay.text.length, upTo);
        replay.text += text;
        this.emit({ kind: "replay-token", replay, text });
      }
      if (row >= rows.length) {
        replay.done = true;
        this.emit({ kind: "replay-end", replay });
        this.model.send({ type: "replay_done", index, status: message.status ?? "done" });
        return;
      }
      const wait = (rows[row]![4] - sent - elapsed) / replay.speed;
      setTimeout(tick, Math.max(0, wait));
    };
    tick();
  }

  dispose(): void {
    this.disposed = true;
    this.live?.cancel();
    this.kernel.dispose();
    for (const cleanup of this.cleanups) cleanup();
    this.listeners.clear();
  }

  // ------------------------------------------------------------ internals

  private emit(change: ControllerChange): void {
    for (const listener of this.listeners) listener(change);
  }

  private onCustom(content: unknown, commands: boolean): void {
    if (this.kernel.handle(content)) return;
    if (!commands) return;
    const msg = asRecord(content);
    if (msg === null) return;
    if (msg.type === "send" && typeof msg.text === "string" && typeof msg.id === "string") {
      // Several pages may show this widget: claim the prompt, stream it only
      // if Python grants the claim (else the kernel or another page does).
      this.claims.set(msg.id, msg.text);
      this.model.send({ type: "claim", id: msg.id, view: this.instanceId });
    } else if ((msg.type === "claimed" || msg.type === "denied") && msg.view === this.instanceId) {
      const id = typeof msg.id === "string" ? msg.id : "";
      const text = this.claims.get(id);
      this.claims.delete(id);
      if (msg.type === "claimed" && text !== undefined) this.send(text, id);
    } else if (msg.type === "history_tail" && msg.page !== PAGE) {
      // Another page's (or the kernel's) change to history, passed on by Python.
      const next = applyTail(this.model.get("history") ?? [], msg as unknown as HistoryTail);
      if (next === null) this.model.send({ type: "history_resync" });
      else this.model.set("history", next);
    } else if (msg.type === "history_resync" && msg.page === PAGE) {
      // Python's history and ours parted: send all of ours.
      if (this.live === null) this.writeHistory(0);
    } else if (msg.type === "stop") {
      this.stop();
    } else if (msg.type === "replay" && typeof msg.index === "number") {
      this.replay(msg.index, typeof msg.speed === "number" ? msg.speed : 1);
    }
  }

  private onHistoryChange(): void {
    const value = this.model.get("history");
    if (value === this.lastWritten || this.live !== null || this.saving > 0) return;
    // Python echoes each write back (to keep other pages in step).  The echo of
    // an earlier write can land after a later one was made here (the reply's
    // start after its end): taking it would show the reply streaming again.
    if (this.ownWrites.includes(historySignature(value ?? []))) return;
    this.messages = (value ?? []).map((m) => ({ ...m }));
    this.written = value ?? [];
    this.emit({ kind: "messages" });
  }

  /**
   * Save `messages` to the model and Python.  Messages are copied one level
   * deep: a finished message (its `timing` above all) is never changed again,
   * so sharing it keeps both the copy and Backbone's comparison cheap.
   */
  private writeHistory(start?: number): void {
    const value = this.messages.map((m) => ({ ...m }));
    const from = start ?? firstChange(this.written, value);
    this.lastWritten = value;
    this.written = value;
    this.ownWrites.push(historySignature(value));
    if (this.ownWrites.length > 8) this.ownWrites.shift();
    pushState(this.model, { busy: this.live !== null }, { value, start: from });
  }

  /** Decide bridge or kernel from the `path` trait and the discovery. */
  private async resolvePath(): Promise<"bridge" | "kernel"> {
    const want = this.model.get("path");
    let path: "bridge" | "kernel";
    if (want === "kernel") {
      path = "kernel";
      this.pathReason = "path = kernel";
    } else {
      const found = await this.discovery;
      if (found.bridge !== null) {
        this.adoptBridge(found.bridge);
        path = "bridge";
        this.pathReason = "";
      } else {
        this.pathReason = found.reason;
        path = "kernel";
      }
    }
    if (this.disposed) return path;
    if (path === "kernel") {
      void this.measureKernelClock();
      const backends = this.model.get("backends");
      if (!Array.isArray(backends) || backends.length === 0) this.model.send({ type: "kernel_backends" });
    }
    if (this.activePath !== path) {
      this.activePath = path;
      pushState(this.model, { active_path: path });
    }
    return path;
  }

  /** First sight of the bridge: publish its backends, pick the default. */
  private adoptBridge(bridge: Bridge): void {
    if (this.bridge === bridge) return;
    this.bridge = bridge;
    const state: Partial<WritableState> = { backends: bridge.listing.backends };
    if (this.model.get("backend") === "" && bridge.listing.default !== "") state.backend = bridge.listing.default;
    pushState(this.model, state);
  }

  private next(): void {
    const item = this.queue.shift();
    if (item === undefined || this.disposed) return;
    this.replays = [];
    this.messages.push({ id: messageId(), role: "user", content: item.text, status: "done" });
    void this.startReply(item.requestId);
  }

  /** Stream a reply to the conversation in `messages` (ending with a user message). */
  private async startReply(requestId: string | null): Promise<void> {
    const request: ChatRequest = {
      backend: this.model.get("backend"),
      messages: conversation(this.messages, this.model.get("system_prompt") ?? ""),
    };
    const modelName = this.model.get("model");
    if (modelName) request.model = modelName;
    const options = this.model.get("options");
    if (options && Object.keys(options).length > 0) request.options = options;

    const reply: Message = {
      id: messageId(),
      role: "assistant",
      content: "",
      status: "streaming",
      backend: request.backend,
    };
    if (request.model) reply.model = request.model;
    const index = this.messages.length;
    this.messages.push(reply);
    let cancelled = false;
    const live: Live = { index, text: "", requestId, cancel: () => (cancelled = true) };
    this.live = live;
    this.writeHistory();
    this.emit({ kind: "reply-start", index });

    let path: "bridge" | "kernel";
    try {
      path = await this.resolvePath();
      if (path === "kernel" && this.model.get("path") === "bridge") {
        throw new Error(`path = bridge, but no bridge is reachable: ${this.pathReason}`);
      }
    } catch (exc) {
      this.finishReply(live, reply, null, {
        type: "error", seq: 0, recv_ms: this.env.now(), code: "connect_failed",
        message: String(exc instanceof Error ? exc.message : exc), retryable: true, partial: false,
      });
      return;
    }
    reply.path = path;
    const clock = await this.clockFor(path);
    const offset = clock?.offsetMs ?? 0;
    const recorder = new TimingRecorder(this.env.now() + offset, offset, clock?.errorMs ?? null);
    const onEvent = (event: StreamEvent, info: ReceiveInfo): void => {
      if (event.type === "start") {
        if (event.model) reply.model = event.model;
        if (event.backend) reply.backend = event.backend;
        if (event.protocol) reply.protocol = event.protocol;
      } else if (event.type === "token") {
        live.text += event.text;
        this.emit({ kind: "token", index, text: event.text });
      }
      recorder.record(event, info.browserMs, live.text.length);
    };

    let done: Promise<TerminalEvent>;
    if (path === "bridge" && this.bridge !== null) {
      const bridge = this.bridge;
      const setting = this.model.get("leg");
      const leg = setting === "auto" ? (this.autoLeg ?? "auto") : setting;
      const handle = openStream({
        baseUrl: bridge.baseUrl,
        token: bridge.token || undefined,
        xsrf: readXsrfCookie(this.env.doc.cookie),
        leg,
        request,
        onEvent,
        clockOffsetMs: offset,
        onLeg: (used) => {
          this.activeLeg = used;
          reply.leg = used;
          if (setting === "auto" && used === "sse") this.autoLeg = "sse";
          this.emit({ kind: "status" });
        },
        env: this.env.clientEnv,
      });
      live.cancel = () => handle.cancel();
      done = handle.done;
    } else {
      const stream = this.kernel.open({ request, onEvent, clockOffsetMs: offset });
      live.cancel = () => stream.cancel();
      done = stream.done;
    }
    if (cancelled) live.cancel();
    const terminal = await done;
    this.finishReply(live, reply, recorder, terminal);
  }

  private finishReply(live: Live, reply: Message, recorder: TimingRecorder | null, terminal: TerminalEvent): void {
    reply.content = live.text;
    reply.status = statusOf(terminal);
    if (terminal.type === "error") {
      reply.error = { code: terminal.code, message: terminal.message, retryable: terminal.retryable };
    }
    if (recorder !== null) reply.timing = recorder.snapshot();
    this.live = null;
    if (this.disposed) return;
    this.emit({ kind: "reply-end", index: live.index });
    this.emit({ kind: "status" });
    // Saving copies the whole history (thousands of timing rows) to Python: the
    // costliest step of a reply, so it gets a task of its own, after the paint.
    this.saving += 1;
    void this.env.yieldToMain().then(() => {
      this.saving -= 1;
      if (this.disposed) return;
      this.writeHistory();
      if (live.requestId !== null) {
        const done = { type: "reply_done", id: live.requestId, index: live.index, status: reply.status };
        this.model.send({ ...done, message_id: reply.id });
      }
      this.next();
    });
  }

  /** The clock alignment for a path, measured if missing or stale. */
  private async clockFor(path: "bridge" | "kernel"): Promise<ClockAlignment | null> {
    if (path === "bridge") {
      const bridge = this.bridge;
      if (bridge === null) return null;
      if (this.env.now() - bridge.clockAt > CLOCK_MAX_AGE_MS) {
        await refreshClock(bridge, this.env);
      }
      return bridge.clock;
    }
    return this.measureKernelClock();
  }

  /**
   * Align with the kernel's clock (`clock_ping` / `clock_pong`), started as
   * soon as the kernel path is chosen.  Optional on the Python side: without
   * answers the figures say "not aligned"; a failed try is repeated once
   * (the kernel may have been busy running the cell that displayed us).
   */
  private measureKernelClock(): Promise<ClockAlignment | null> {
    if (this.kernelClock === null) {
      this.kernelClockTries += 1;
      const attempt = measureClockWith(() => this.kernel.ping(500), 5, this.env.now).catch(() => null);
      this.kernelClock = attempt;
      void attempt.then((result) => {
        if (result === null && this.kernelClockTries < 2 && this.kernelClock === attempt) this.kernelClock = null;
      });
    }
    return this.kernelClock;
  }
}
