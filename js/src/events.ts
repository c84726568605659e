/**
 * The event vocabulary, mirroring `jupyter_streamchat/events.py` and the wire
 * contract in `docs/protocol.md` section 1.
 *
 * A stream is `start`, then `token` / `usage` / `heartbeat`, then exactly one
 * terminal event, `done` or `error` (an `error` may come without `start`).
 * Every event carries `seq` and `recv_ms`; `emit_ms` is the backend's own stamp
 * when it gives one.  On the browser leg the bridge adds `send_ms` to every
 * event and `stream_id` to `start`.
 */

/** Stable error codes, exactly the `ErrorCode` literal of events.py. */
export const ERROR_CODES = [
  "connect_failed",
  "timeout",
  "http_status",
  "protocol_error",
  "upstream_error",
  "upstream_closed",
  "cancelled",
  "limit_exceeded",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Fields every event has, plus the bridge's `send_ms` (browser leg only). */
interface EventBase {
  /** Per-stream sequence number; a coalesced token jumps (see protocol.md). */
  seq: number;
  /** When the bridge (or kernel) received it from the backend, epoch ms. */
  recv_ms: number;
  /** When the backend emitted it, if the backend stamps its frames. */
  emit_ms?: number;
  /** When the bridge wrote it to the browser leg. */
  send_ms?: number;
}

export interface StartEvent extends EventBase {
  type: "start";
  model?: string;
  backend?: string;
  protocol?: string;
  /** Bridge addition: the id to resume this stream with. */
  stream_id?: string;
}

export interface TokenEvent extends EventBase {
  type: "token";
  text: string;
  /** Backend frames merged into this event, >= 1. */
  chunks: number;
}

export interface UsageEvent extends EventBase {
  type: "usage";
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
}

export interface DoneEvent extends EventBase {
  type: "done";
  finish_reason?: string;
}

export interface ErrorEvent extends EventBase {
  type: "error";
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** True when text had already arrived: the reader keeps it. */
  partial: boolean;
  status?: number;
  retry_after?: number;
}

export interface HeartbeatEvent extends EventBase {
  type: "heartbeat";
}

export type StreamEvent =
  | StartEvent
  | TokenEvent
  | UsageEvent
  | DoneEvent
  | ErrorEvent
  | HeartbeatEvent;

export type EventType = StreamEvent["type"];
export type TerminalEvent = DoneEvent | ErrorEvent;

/** Raised by {@link parseEvent}: the value is not an event of the contract. */
export class EventFormatError extends Error {
  override name = "EventFormatError";
}

type FieldKind = "int" | "nonneg-int" | "positive-int" | "number" | "string" | "boolean";

interface FieldSpec {
  kind: FieldKind;
  required: boolean;
}

const req = (kind: FieldKind): FieldSpec => ({ kind, required: true });
const opt = (kind: FieldKind): FieldSpec => ({ kind, required: false });

const COMMON: Record<string, FieldSpec> = {
  seq: req("nonneg-int"),
  recv_ms: req("number"),
  emit_ms: opt("number"),
  send_ms: opt("number"),
};

/**
 * Field table per event type (data, not code, so it reads like the protocol
 * table).  `chunks`, `retryable` and `partial` have defaults in events.py, so
 * they are optional here and filled in by {@link parseEvent}.
 */
const SCHEMA: Record<EventType, Record<string, FieldSpec>> = {
  start: {
    ...COMMON,
    model: opt("string"),
    backend: opt("string"),
    protocol: opt("string"),
    stream_id: opt("string"),
  },
  token: { ...COMMON, text: req("string"), chunks: opt("positive-int") },
  usage: {
    ...COMMON,
    prompt_tokens: opt("nonneg-int"),
    completion_tokens: opt("nonneg-int"),
    total_tokens: opt("nonneg-int"),
  },
  done: { ...COMMON, finish_reason: opt("string") },
  error: {
    ...COMMON,
    code: req("string"),
    message: req("string"),
    retryable: opt("boolean"),
    partial: opt("boolean"),
    status: opt("int"),
    retry_after: opt("number"),
  },
  heartbeat: { ...COMMON },
};

const EVENT_TYPES = Object.keys(SCHEMA) as EventType[];

function isEventType(value: unknown): value is EventType {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(SCHEMA, value);
}

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** Whether `value` fits `kind`; numbers must be finite (JSON has no NaN). */
function fits(kind: FieldKind, value: unknown): boolean {
  switch (kind) {
    case "string":
      return typeof value === "string";
    case "boolean":
      return typeof value === "boolean";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "int":
      return Number.isInteger(value);
    case "nonneg-int":
      return Number.isInteger(value) && (value as number) >= 0;
    case "positive-int":
      return Number.isInteger(value) && (value as number) >= 1;
  }
}

const KIND_TEXT: Record<FieldKind, string> = {
  string: "a string",
  boolean: "a boolean",
  number: "a finite number",
  int: "an integer",
  "nonneg-int": "an integer >= 0",
  "positive-int": "an integer >= 1",
};

/**
 * Validate one decoded JSON value as a stream event.
 *
 * Mirrors `events.event_from_dict`: unknown types, unknown fields and unknown
 * error codes are rejected with a message naming the culprit; `null` fields are
 * treated as absent (the wire leaves them out, but a lenient sender may not).
 * Returns a fresh object with defaults filled in (`chunks` 1, `retryable` and
 * `partial` false).
 */
export function parseEvent(json: unknown): StreamEvent {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new EventFormatError(`event must be a JSON object, got ${describe(json)}`);
  }
  const data = json as Record<string, unknown>;
  const kind = data.type;
  if (!isEventType(kind)) {
    throw new EventFormatError(
      `unknown event type ${JSON.stringify(kind) ?? "undefined"}; expected one of ${EVENT_TYPES.join(", ")}`,
    );
  }
  const schema = SCHEMA[kind];
  const out: Record<string, unknown> = { type: kind };
  const unknown = Object.keys(data).filter((k) => k !== "type" && !(k in schema));
  if (unknown.length > 0) {
    throw new EventFormatError(`${kind} event has unknown fields ${unknown.sort().join(", ")}`);
  }
  for (const [name, spec] of Object.entries(schema)) {
    const value = data[name];
    if (value === undefined || value === null) {
      if (spec.required) throw new EventFormatError(`${kind} event lacks field "${name}"`);
      continue;
    }
    if (!fits(spec.kind, value)) {
      throw new EventFormatError(
        `${kind} event field "${name}" must be ${KIND_TEXT[spec.kind]}, got ${describe(value)} ${JSON.stringify(value)}`,
      );
    }
    out[name] = value;
  }
  if (kind === "error" && !isErrorCode(out.code)) {
    throw new EventFormatError(
      `error event has unknown code ${JSON.stringify(out.code)}; expected one of ${ERROR_CODES.join(", ")}`,
    );
  }
  if (kind === "token" && out.chunks === undefined) out.chunks = 1;
  if (kind === "error") {
    if (out.retryable === undefined) out.retryable = false;
    if (out.partial === undefined) out.partial = false;
  }
  return out as unknown as StreamEvent;
}

/** Parse one event from its JSON text (an SSE `data` field, a WS message). */
export function parseEventJson(text: string): StreamEvent {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (exc) {
    throw new EventFormatError(`event is not JSON: ${(exc as Error).message}`);
  }
  return parseEvent(data);
}

/** True for `done` and `error`: nothing follows them. */
export function isTerminal(event: StreamEvent): event is TerminalEvent {
  return event.type === "done" || event.type === "error";
}

/**
 * An error made on this side (a drop that could not be resumed, a bad frame):
 * it follows the last event seen, keeps the partial text, and is retryable
 * unless the peer broke the protocol.
 */
export function localError(
  code: ErrorCode,
  message: string,
  lastSeq: number,
  recvMs: number,
  partial: boolean,
): ErrorEvent {
  return {
    type: "error",
    seq: lastSeq + 1,
    recv_ms: recvMs,
    code,
    message,
    retryable: code !== "protocol_error",
    partial,
  };
}
