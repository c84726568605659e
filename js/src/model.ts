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

/** `value` as a JSON object, or null. */
export function asRecord(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}
