/**
 * The widget's synced state: a typed mirror of the Python traitlets of
 * `ChatWidget`, plus the shapes saved in `history` (messages and their
 * recorded timings).  Change both sides together.
 */

import type { ErrorCode } from "./events";

export type Role = "user" | "assistant" | "system";
export type MessageStatus = "streaming" | "done" | "error" | "cancelled";
export type LegSetting = "auto" | "sse" | "ws";
export type PathSetting = "auto" | "bridge" | "kernel";
export type ActivePath = "bridge" | "kernel" | "";

/**
 * One recorded token event, compact so that it fits in a saved notebook:
 * `[seq, emit_ms, bridge_recv_ms, bridge_send_ms, browser_recv_ms, text_length]`.
 *
 * Times are epoch ms on the server's clock (browser time + clock offset),
 * rounded to 0.1 ms; `null` where that stamp does not exist (no backend stamp,
 * no bridge on the kernel path).  `text_length` is `content.length` (UTF-16
 * code units) once this token was applied, so `content.slice(0, text_length)`
 * is what the reader saw at that moment.
 */
export type TimingEvent = [
  seq: number,
  emit_ms: number | null,
  bridge_recv_ms: number | null,
  bridge_send_ms: number | null,
  browser_recv_ms: number,
  text_length: number,
];

/** What one reply's stream looked like from the browser. */
export interface Timing {
  /** When the request left the browser (server clock). */
  sent_ms: number;
  /** Server clock minus browser clock, as measured. */
  clock_offset_ms: number;
  /** The offset's error bound (half the best ping); null when not measured. */
  clock_error_ms: number | null;
  /** First token's browser receive time minus `sent_ms`; null without tokens. */
  ttft_ms: number | null;
  /** Terminal event's browser receive time minus `sent_ms`. */
  duration_ms: number;
  /** `completion_tokens` from usage when reported, else `chunks`. */
  tokens: number;
  /** Token events the browser received. */
  arrivals: number;
  /** Backend frames behind them (sum of `chunks`). */
  chunks: number;
  /** One row per token event received, in order. */
  events: TimingEvent[];
}

export interface MessageError {
  code: ErrorCode | string;
  message: string;
  retryable: boolean;
}

export interface Message {
  id: string;
  role: Role;
  content: string;
  status?: MessageStatus;
  backend?: string;
  model?: string;
  /** The backend's protocol as the `start` event names it (`openai`, ...). */
  protocol?: string;
  /** The browser leg (`sse` / `ws`), bridge path only. */
  leg?: string;
  /** `bridge` or `kernel`. */
  path?: string;
  error?: MessageError;
  timing?: Timing;
}

/** One entry of `backends` (from `GET api/backends`, or set by Python). */
export interface BackendInfo {
  name: string;
  protocol?: string;
  dialect?: string;
  source?: string;
  models?: string[];
  model?: string;
  health?: { reachable?: boolean; latency_ms?: number | null; error?: string | null };
}

/** The synced traitlets. */
export interface ChatState {
  backend: string;
  /** "" = the backend's default model. */
  model: string;
  leg: LegSetting;
  /** Requested path. */
  path: PathSetting;
  /** The path in use; written by JS. */
  active_path: ActivePath | string;
  history: Message[];
  system_prompt: string;
  options: Record<string, unknown>;
  busy: boolean;
  backends: BackendInfo[];
  title: string;
}

/** The anywidget model as far as this widget uses it (AnyModel<ChatState>). */
export interface Model<S = ChatState> {
  get<K extends keyof S>(name: K): S[K];
  set<K extends keyof S>(name: K, value: S[K]): void;
  save_changes(): void;
  send(content: unknown, callbacks?: unknown, buffers?: unknown): void;
  on(name: string, callback: (...args: never[]) => void): void;
  off(name?: string | null, callback?: ((...args: never[]) => void) | null): void;
}

/** The traitlets the front end writes (Python accepts no others from a `state` message). */
export type WritableState = Pick<ChatState, "history" | "busy" | "active_path" | "backends" | "backend" | "model" | "leg">;

/** Names this page in `state` messages (several pages may show one widget). */
export const PAGE = Math.random().toString(36).slice(2, 10) + Date.now().toString(36);
/** Increases with every `state` message this page sends. */
let revision = 0;

/**
 * The changed end of `history`: Python keeps `history[0, start)`, checks that
 * its last message has id `after`, and puts `messages` after it.
 */
export interface HistoryTail {
  start: number;
  after: string | null;
  messages: Message[];
}

/**
 * Write traitlets: set them on the model here, and send them to Python as
 * `{"type":"state","page","rev","state":{...},"history":HistoryTail?}`, which
 * Python applies with `Widget.set_state`.
 *
 * Why not `save_changes()`: ipywidgets sends at most one state update at a
 * time and waits for the kernel's `idle` status before the next; a kernel that
 * handles comm messages while an async cell awaits (ipykernel 7.4) publishes no
 * status for them, so after one update sent during `await chat.send(...)`
 * every later update of the widget stayed buffered in the page for good.
 * Custom messages are not throttled.  That same kernel may also handle comm
 * messages out of order (a small one overtakes a large one), hence `rev`:
 * Python keeps, per page and trait, only the newest value.
 *
 * `history` goes as a {@link HistoryTail}: a reply's recorded timings run to
 * thousands of rows, and sending the whole conversation at the end of every
 * reply made that step cost more with each reply.  Python passes the tail on
 * to the other pages (`history_tail`), never back to this one.
 */
export function pushState(
  model: Model,
  state: Partial<Omit<WritableState, "history">>,
  history?: { value: Message[]; start: number },
): void {
  for (const [name, value] of Object.entries(state)) model.set(name as keyof ChatState, value as never);
  revision += 1;
  const message: Record<string, unknown> = { type: "state", page: PAGE, rev: revision, state };
  if (history !== undefined) {
    const { value, start } = history;
    model.set("history", value);
    const tail: HistoryTail = { start, after: start > 0 ? value[start - 1]!.id : null, messages: value.slice(start) };
    message.history = tail;
  }
  model.send(message);
}

/** `history` with `tail` applied, or null if it does not fit (then ask for all of it). */
export function applyTail(history: readonly Message[], tail: HistoryTail): Message[] | null {
  if (tail.start > history.length) return null;
  if (tail.start > 0 && history[tail.start - 1]!.id !== tail.after) return null;
  return history.slice(0, tail.start).concat(tail.messages);
}

/** A message as it may change: id, status and sizes (the rest never changes alone). */
function looksSame(a: Message, b: Message): boolean {
  return a.id === b.id && a.status === b.status && a.content === b.content && a.timing === b.timing && a.error === b.error;
}

/** The first index where `next` differs from `written` (its length if it only grew). */
export function firstChange(written: readonly Message[], next: readonly Message[]): number {
  const n = Math.min(written.length, next.length);
  for (let i = 0; i < n; i += 1) if (!looksSame(written[i]!, next[i]!)) return i;
  return n;
}

/** `value` as a JSON object, or null. */
export function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}
