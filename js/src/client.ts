/**
 * The stream client: one chat request to the bridge, over SSE (fetch POST) or
 * a WebSocket, with resume on a dropped connection and exactly-once delivery.
 *
 * The legs (see docs/protocol.md section 2):
 *  - `sse`:  `POST {base}streamchat/api/chat`, body read with {@link SSEParser};
 *            resume is `GET {base}streamchat/api/chat/{stream_id}` with
 *            `Last-Event-ID: <last seq seen>`.
 *  - `ws`:   `{ws origin}{base}streamchat/api/chat/ws`, `{"type":"chat"}` out,
 *            events in; resume is a new socket sending `{"type":"resume"}`.
 *  - `auto`: WebSocket if it opens within `wsOpenTimeoutMs`, else SSE.
 *
 * The client picks the `stream_id` itself, so a connection lost before `start`
 * arrived can still be resumed.  Whatever happens, `onEvent` sees each `seq` at
 * most once, in order, and the stream always ends with exactly one terminal
 * event: the bridge's, or one made here (then `synthetic` is true).
 */

import {
  EventFormatError,
  isTerminal,
  localError,
  parseEvent,
  parseEventJson,
  type ErrorCode,
  type ErrorEvent,
  type StreamEvent,
  type TerminalEvent,
} from "./events";
import { parseHeartbeatComment, SSELimitError, SSEParser } from "./sse";
import { browserNowMs, type FetchLike } from "./clock";

export type Leg = "sse" | "ws";
export type LegChoice = Leg | "auto";

export interface ChatMessage {
  role: "user" | "assistant" | "system";
  content: string;
}

/** The request body fields of `POST api/chat` (and the WS `chat` message). */
export interface ChatRequest {
  backend: string;
  messages: ChatMessage[];
  model?: string;
  options?: Record<string, unknown>;
}

/** Running counts, readable at any time through {@link StreamHandle.counters}. */
export interface StreamCounters {
  /** Events delivered, heartbeats excluded. */
  events: number;
  /** Token events delivered (what the browser actually received). */
  arrivals: number;
  /** Backend frames behind those tokens (sum of `chunks`). */
  chunks: number;
  heartbeats: number;
  /** Body reads / socket messages that carried at least one event. */
  reads: number;
  /** Events dropped because their seq had been seen already (after a resume). */
  duplicates: number;
  /** Reconnections made (successful or not). */
  reconnects: number;
}

/** All counters at zero, for a new stream (bridge or kernel path). */
export function newCounters(): StreamCounters {
  return {
    events: 0,
    arrivals: 0,
    chunks: 0,
    heartbeats: 0,
    reads: 0,
    duplicates: 0,
    reconnects: 0,
  };
}

export interface ReceiveInfo {
  /** Browser receive time on the server's clock (browser clock + offset). */
  browserMs: number;
  /** True for the terminal error this client made up (transport gave out, cancel). */
  synthetic: boolean;
}

/** A WebSocket as far as this client needs one (the DOM one fits). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketFactory = new (url: string) => WebSocketLike;

/** Everything the client touches outside itself; injectable for tests. */
export interface ClientEnv {
  fetch: FetchLike;
  WebSocket: WebSocketFactory;
  /** `location.origin` of the page. */
  origin: string;
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Let the page run other tasks (paint, input) before going on. */
  yieldToMain: () => Promise<void>;
}

export interface RetryPolicy {
  /** Reconnections per outage (reset whenever a new event arrives). */
  attempts: number;
  /** First delay; doubles each attempt. */
  baseDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 200 };

export interface OpenStreamOptions {
  /** Jupyter's base URL, e.g. `/` or `/user/x/` (a trailing slash is added). */
  baseUrl: string;
  token?: string;
  xsrf?: string;
  leg: LegChoice;
  request: ChatRequest;
  onEvent: (event: StreamEvent, info: ReceiveInfo) => void;
  /** Called once, when the first connection is up, with the leg in use. */
  onLeg?: (leg: Leg) => void;
  signal?: AbortSignal;
  /** Server clock minus browser clock (see clock.ts); 0 if unknown. */
  clockOffsetMs?: number;
  streamId?: string;
  retry?: RetryPolicy;
  /** How long `auto` waits for the WebSocket to open (and `ws` at all). */
  wsOpenTimeoutMs?: number;
  env?: Partial<ClientEnv>;
}

export interface StreamHandle {
  /** The id to resume with (the client's, or the bridge's if it differs). */
  readonly streamId: string;
  /** The leg in use, once known. */
  readonly leg: Leg | null;
  readonly counters: Readonly<StreamCounters>;
  /** The terminal event (also delivered through `onEvent`); never rejects. */
  readonly done: Promise<TerminalEvent>;
  /** Stop the stream: abort the fetch / send `cancel` on the socket. */
  cancel(): void;
}

// ---------------------------------------------------------------- helpers

/** `base` with exactly one trailing slash, then `path` (no leading slash). */
export function joinUrl(base: string, path: string): string {
  const b = base.endsWith("/") ? base : `${base}/`;
  return b + path.replace(/^\/+/, "");
}

/** The WebSocket URL for a path under the base URL, from the page origin. */
export function wsUrl(origin: string, baseUrl: string, path: string, token?: string): string {
  const wsOrigin = origin.replace(/^http(s?):/, "ws$1:");
  const url = wsOrigin + joinUrl(baseUrl.startsWith("/") ? baseUrl : `/${baseUrl}`, path);
  return token ? `${url}?token=${encodeURIComponent(token)}` : url;
}

/** The `_xsrf` cookie's value from a `document.cookie` string, if any. */
export function readXsrfCookie(cookie: string): string | undefined {
  for (const part of cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === "_xsrf") {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return undefined;
}

/** Auth per BROWSER-TESTING.md: a token header, else XSRF for cookie auth. */
export function authHeaders(token?: string, xsrf?: string): Record<string, string> {
  if (token) return { Authorization: `token ${token}` };
  if (xsrf) return { "X-XSRFToken": xsrf };
  return {};
}

const STREAM_ID_RE = /^[A-Za-z0-9_-]{8,64}$/;

/** A fresh stream id: 32 hex digits (a UUID without dashes). */
export function newStreamId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID().replace(/-/g, "");
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether `id` is a valid stream id for the bridge (8–64 of `[A-Za-z0-9_-]`). */
export function isStreamId(id: string): boolean {
  return STREAM_ID_RE.test(id);
}

/** Delay before reconnection `attempt` (0-based): base doubling. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  return policy.baseDelayMs * 2 ** attempt;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/**
 * Resolve in a new task, so that the page can paint and handle input first
 * (`scheduler.yield()` where the browser has it, else a MessageChannel message,
 * which unlike `setTimeout` is not clamped to 4 ms).
 */
export function yieldToMain(): Promise<void> {
  const scheduler = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler;
  if (typeof scheduler?.yield === "function") return scheduler.yield();
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** Events of one read are handed on in slices of at most this long, yielding between. */
export const SLICE_MS = 8;

/** The page's globals, for whatever `env` leaves out (or sets to undefined). */
function withEnvDefaults(env: Partial<ClientEnv> = {}): ClientEnv {
  const g = globalThis as unknown as {
    fetch: FetchLike;
    WebSocket: WebSocketFactory;
    location?: { origin: string };
  };
  return {
    fetch: env.fetch ?? ((input, init) => g.fetch(input, init)),
    WebSocket: env.WebSocket ?? g.WebSocket,
    origin: env.origin ?? g.location?.origin ?? "http://localhost",
    now: env.now ?? browserNowMs,
    sleep: env.sleep ?? abortableSleep,
    yieldToMain: env.yieldToMain ?? yieldToMain,
  };
}

// ---------------------------------------------------------------- legs

/** How one connection ended. */
type Outcome =
  /** The terminal event was delivered. */
  | { kind: "terminal" }
  /** The transport was lost (or never answered): the stream may live on. */
  | { kind: "dropped"; reason: string; requestSent: boolean }
  /** The bridge answered with an HTTP error / `request_error`. */
  | { kind: "refused"; status: number; code: string; message: string }
  /** The bridge sent something that is not the protocol. */
  | { kind: "invalid"; message: string }
  | { kind: "aborted" };

/** Where a leg hands events: returns true once the terminal one is through. */
type Deliver = (event: StreamEvent, browserRawMs: number) => boolean;

interface LegContext {
  env: ClientEnv;
  signal: AbortSignal;
  deliver: Deliver;
  /** The seq of the last event delivered (heartbeats on SSE repeat it). */
  lastSeq: () => number;
  counters: StreamCounters;
  onOpen: () => void;
  onStreamId: (id: string) => void;
}

/** Parse a bridge error body `{"error": {"code", "message"}}`, tolerantly. */
async function readRefusal(response: Response): Promise<Outcome> {
  let code = "http_error";
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.message === "string") message = body.error.message;
  } catch {
    // Not JSON (a proxy's HTML page, a login redirect): keep the status text.
  }
  return { kind: "refused", status: response.status, code, message };
}

/** One SSE connection: fetch, check, read the body through the parser. */
async function runSse(ctx: LegContext, url: string, init: RequestInit): Promise<Outcome> {
  const isPost = init.method === "POST";
  let response: Response;
  try {
    response = await ctx.env.fetch(url, { ...init, signal: ctx.signal, cache: "no-store" });
  } catch (exc) {
    if (ctx.signal.aborted) return { kind: "aborted" };
    return { kind: "dropped", reason: `fetch failed: ${String(exc)}`, requestSent: isPost };
  }
  if (!response.ok) return readRefusal(response);
  const contentType = response.headers.get("Content-Type") ?? "";
  if (!contentType.includes("text/event-stream") || response.body === null) {
    void response.body?.cancel().catch(() => undefined);
    return {
      kind: "invalid",
      message: `expected text/event-stream from ${url}, got ${JSON.stringify(contentType)} (HTTP ${response.status})`,
    };
  }
  const headerId = response.headers.get("X-StreamChat-Stream-Id");
  if (headerId) ctx.onStreamId(headerId);
  ctx.onOpen();
  const reader = response.body.getReader();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const items = parser.feed(value);
      const t = ctx.env.now();
      let carried = false;
      let slice = t;
      for (const item of items) {
        // One read can hold thousands of events (a fast backend, a resume): hand
        // them on in slices, letting the page paint between, so no task runs long.
        if (ctx.env.now() - slice > SLICE_MS) {
          await ctx.env.yieldToMain();
          if (ctx.signal.aborted) return { kind: "aborted" };
          slice = ctx.env.now();
        }
        if (item.kind === "event") {
          carried = true;
          if (ctx.deliver(parseEventJson(item.data), t)) {
            ctx.counters.reads += 1;
            void reader.cancel().catch(() => undefined);
            return { kind: "terminal" };
          }
        } else if (item.kind === "comment") {
          const hb = parseHeartbeatComment(item.text);
          if (hb !== null) ctx.deliver({ type: "heartbeat", seq: Math.max(ctx.lastSeq(), 0), recv_ms: hb }, t);
        }
      }
      if (carried) ctx.counters.reads += 1;
    }
    return { kind: "dropped", reason: "the response ended before the terminal event", requestSent: true };
  } catch (exc) {
    if (ctx.signal.aborted) return { kind: "aborted" };
    if (exc instanceof EventFormatError || exc instanceof SSELimitError) {
      void reader.cancel().catch(() => undefined);
      return { kind: "invalid", message: exc.message };
    }
    return { kind: "dropped", reason: `reading the response failed: ${String(exc)}`, requestSent: true };
  }
}

/**
 * One WebSocket connection: open (within `openTimeoutMs`), send `first`, hand
 * events on until the terminal one.  Aborting sends `{"type":"cancel"}` first.
 */
function runWs(
  ctx: LegContext,
  url: string,
  first: Record<string, unknown>,
  openTimeoutMs: number,
): Promise<Outcome & { opened: boolean }> {
  return new Promise((resolve) => {
    let opened = false;
    let settled = false;
    let ws: WebSocketLike;
    try {
      ws = new ctx.env.WebSocket(url);
    } catch (exc) {
      resolve({ kind: "dropped", reason: `WebSocket failed: ${String(exc)}`, requestSent: false, opened });
      return;
    }
    const finish = (outcome: Outcome, close: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onAbort);
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      if (close) {
        try {
          ws.close(1000);
        } catch {
          // already closing
        }
      }
      resolve({ ...outcome, opened });
    };
    const onAbort = (): void => {
      if (opened) {
        try {
          ws.send(JSON.stringify({ type: "cancel" }));
        } catch {
          // the socket is going anyway
        }
      }
      finish({ kind: "aborted" }, true);
    };
    const timer = setTimeout(() => {
      if (!opened) {
        finish(
          { kind: "dropped", reason: `WebSocket did not open within ${openTimeoutMs} ms`, requestSent: false },
          true,
        );
      }
    }, openTimeoutMs);
    if (ctx.signal.aborted) {
      finish({ kind: "aborted" }, true);
      return;
    }
    ctx.signal.addEventListener("abort", onAbort);
    ws.onopen = () => {
      opened = true;
      clearTimeout(timer);
      ctx.onOpen();
      try {
        ws.send(JSON.stringify(first));
      } catch (exc) {
        finish({ kind: "dropped", reason: `WebSocket send failed: ${String(exc)}`, requestSent: false }, true);
      }
    };
    ws.onmessage = (message) => {
      const t = ctx.env.now();
      if (typeof message.data !== "string") {
        finish({ kind: "invalid", message: "binary WebSocket message; the bridge sends JSON text" }, true);
        return;
      }
      let data: unknown;
      try {
        data = JSON.parse(message.data);
      } catch (exc) {
        finish({ kind: "invalid", message: `WebSocket message is not JSON: ${(exc as Error).message}` }, true);
        return;
      }
      const obj = data as Record<string, unknown> | null;
      if (obj !== null && typeof obj === "object" && obj.type === "request_error") {
        finish(
          {
            kind: "refused",
            status: typeof obj.status === "number" ? obj.status : 400,
            code: typeof obj.code === "string" ? obj.code : "request_error",
            message: typeof obj.message === "string" ? obj.message : "request refused",
          },
          true,
        );
        return;
      }
      try {
        // Events that left the bridge together come as one array (one browser task).
        const events = Array.isArray(data) ? data.map(parseEvent) : [parseEvent(data)];
        if (events.some((event) => event.type !== "heartbeat")) ctx.counters.reads += 1;
        for (const event of events) {
          if (ctx.deliver(event, t)) {
            finish({ kind: "terminal" }, true);
            return;
          }
        }
      } catch (exc) {
        finish({ kind: "invalid", message: (exc as Error).message }, true);
      }
    };
    ws.onerror = () => {
      // A close event always follows; it decides.
    };
    ws.onclose = (ev) => {
      finish(
        {
          kind: "dropped",
          reason: opened
            ? `WebSocket closed before the terminal event (code ${ev.code})`
            : `WebSocket could not connect (code ${ev.code})`,
          requestSent: opened,
        },
        false,
      );
    };
  });
}

// ---------------------------------------------------------------- the client

/** Map a refusal to the error code of the event vocabulary. */
function refusalCode(status: number): ErrorCode {
  return status === 413 || status === 429 ? "limit_exceeded" : "http_status";
}

/**
 * Open one chat stream.  Returns at once; events flow through `onEvent` and
 * `done` resolves with the terminal event.  Never throws for transport or
 * protocol trouble: those end the stream with a (synthetic) `error` event.
 */
export function openStream(options: OpenStreamOptions): StreamHandle {
  const env = withEnvDefaults(options.env);
  const policy = options.retry ?? DEFAULT_RETRY;
  const offset = options.clockOffsetMs ?? 0;
  const wsOpenTimeoutMs = options.wsOpenTimeoutMs ?? 1500;
  const controller = new AbortController();
  const signal = controller.signal;
  if (options.signal) {
    if (options.signal.aborted) controller.abort();
    else options.signal.addEventListener("abort", () => controller.abort(), { once: true });
  }

  const counters = newCounters();
  let streamId = options.streamId ?? newStreamId();
  if (!isStreamId(streamId)) throw new Error(`stream id ${JSON.stringify(streamId)} is not 8-64 of [A-Za-z0-9_-]`);
  let lastSeq = -1;
  let terminal: TerminalEvent | null = null;
  let leg: Leg | null = options.leg === "auto" ? null : options.leg;
  let legAnnounced = false;

  const deliver: Deliver = (event, raw) => {
    if (terminal !== null) return true;
    const info: ReceiveInfo = { browserMs: raw + offset, synthetic: false };
    if (event.type === "heartbeat") {
      counters.heartbeats += 1;
      options.onEvent(event, info);
      return false;
    }
    // A terminal event is never a duplicate (we would have stopped at the
    // first one), so it is taken whatever its seq; others must move forward.
    if (event.seq <= lastSeq && !isTerminal(event)) {
      counters.duplicates += 1;
      return false;
    }
    lastSeq = Math.max(lastSeq, event.seq);
    counters.events += 1;
    if (event.type === "start" && event.stream_id && isStreamId(event.stream_id)) streamId = event.stream_id;
    if (event.type === "token") {
      counters.arrivals += 1;
      counters.chunks += event.chunks;
    }
    if (isTerminal(event)) terminal = event;
    options.onEvent(event, info);
    return terminal !== null;
  };

  /** End the stream with an error made here. */
  const fail = (code: ErrorCode, message: string, extra: Partial<ErrorEvent> = {}): TerminalEvent => {
    if (terminal !== null) return terminal;
    const now = env.now() + offset;
    const event: ErrorEvent = { ...localError(code, message, lastSeq, now, counters.arrivals > 0), ...extra };
    terminal = event;
    options.onEvent(event, { browserMs: now, synthetic: true });
    return event;
  };

  /** The context of one connection over `which` leg. */
  const ctx = (which: Leg): LegContext => ({
    env,
    signal,
    deliver,
    lastSeq: () => lastSeq,
    counters,
    onOpen: () => {
      if (leg === null) leg = which; // `auto` is decided by the first leg that opens
      if (!legAnnounced) {
        legAnnounced = true;
        options.onLeg?.(which);
      }
    },
    onStreamId: (id) => {
      if (isStreamId(id)) streamId = id;
    },
  });

  const headers = authHeaders(options.token, options.xsrf);
  // `resumable`: the bridge keeps the stream going for its resume window when
  // the connection drops, so a reconnect continues it (a stop cancels it below).
  const chatBody = (): Record<string, unknown> => ({ ...options.request, stream_id: streamId, resumable: true });

  /**
   * Stopping an SSE stream: aborting the fetch only looks like a dropped
   * connection to the bridge, which then keeps a resumable stream running, so
   * it is cancelled explicitly (`DELETE api/chat/{id}`; 404 if it never began).
   * On the WebSocket the `cancel` message does this.
   */
  let cancelSent = false;
  const cancelOnBridge = (): void => {
    if (leg !== "sse" || cancelSent || terminal !== null) return;
    cancelSent = true;
    const url = joinUrl(options.baseUrl, `streamchat/api/chat/${encodeURIComponent(streamId)}`);
    void env.fetch(url, { method: "DELETE", headers, cache: "no-store" }).catch(() => undefined);
  };

  const connect = async (mode: "fresh" | "resume"): Promise<Outcome & { opened?: boolean }> => {
    const which = leg ?? "ws";
    if (which === "sse") {
      if (mode === "fresh") {
        return runSse(ctx("sse"), joinUrl(options.baseUrl, "streamchat/api/chat"), {
          method: "POST",
          headers: { ...headers, "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify(chatBody()),
        });
      }
      const resumeHeaders: Record<string, string> = { ...headers, Accept: "text/event-stream" };
      if (lastSeq >= 0) resumeHeaders["Last-Event-ID"] = String(lastSeq);
      return runSse(ctx("sse"), joinUrl(options.baseUrl, `streamchat/api/chat/${encodeURIComponent(streamId)}`), {
        method: "GET",
        headers: resumeHeaders,
      });
    }
    const url = wsUrl(env.origin, options.baseUrl, "streamchat/api/chat/ws", options.token);
    const first =
      mode === "fresh"
        ? { type: "chat", ...chatBody() }
        : { type: "resume", stream_id: streamId, last_seq: lastSeq };
    // `auto` gives the socket a short window; an explicit `ws` a generous one.
    const timeout = leg === null ? wsOpenTimeoutMs : Math.max(wsOpenTimeoutMs, 10_000);
    return runWs(ctx("ws"), url, first, timeout);
  };

  const run = async (): Promise<TerminalEvent> => {
    let mode: "fresh" | "resume" = "fresh";
    let attempt = 0;
    for (;;) {
      if (signal.aborted) {
        cancelOnBridge();
        return fail("cancelled", "cancelled by the reader");
      }
      const seqBefore = lastSeq;
      const outcome = await connect(mode);
      if (terminal !== null) return terminal;
      if (lastSeq > seqBefore) attempt = 0; // progress: a new outage gets the full budget
      switch (outcome.kind) {
        case "terminal":
          return terminal ?? fail("internal", "terminal outcome without a terminal event");
        case "aborted":
          cancelOnBridge();
          return fail("cancelled", "cancelled by the reader");
        case "invalid":
          return fail("protocol_error", `the bridge broke the protocol: ${outcome.message}`);
        case "refused": {
          if (mode === "resume" && outcome.status === 404 && lastSeq < 0) {
            mode = "fresh"; // the stream never started on the bridge: send it again
          } else if (mode === "fresh" && outcome.status === 409 && attempt > 0) {
            mode = "resume"; // our earlier POST did reach the bridge after all
          } else if (mode === "resume") {
            return fail(
              "upstream_closed",
              `connection to the bridge lost and stream ${streamId} cannot be resumed (HTTP ${outcome.status} ${outcome.code}: ${outcome.message})`,
              { status: outcome.status },
            );
          } else {
            const status = outcome.status;
            return fail(refusalCode(status), `${outcome.code}: ${outcome.message}`, {
              status,
              retryable: status === 409 || status === 429 || status >= 500,
            });
          }
          break;
        }
        case "dropped": {
          if (leg === null && outcome.opened === false) {
            leg = "sse"; // auto: no socket in time, use SSE without spending an attempt
            mode = "fresh";
            continue;
          }
          if (attempt >= policy.attempts) {
            const what = counters.events > 0 ? "upstream_closed" : "connect_failed";
            return fail(what, `connection to the bridge lost after ${attempt} reconnection attempts: ${outcome.reason}`);
          }
          if (outcome.requestSent || mode === "resume") mode = "resume";
          break;
        }
      }
      await env.sleep(backoffMs(policy, attempt), signal);
      attempt += 1;
      counters.reconnects += 1;
    }
  };

  const done = run().catch((exc: unknown) => fail("internal", `stream client bug: ${String(exc)}`));

  return {
    get streamId() {
      return streamId;
    },
    get leg() {
      return leg;
    },
    counters,
    done,
    cancel: () => controller.abort(),
  };
}
