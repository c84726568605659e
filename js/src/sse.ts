/**
 * An incremental Server-Sent Events parser for fetch bodies (sans-I/O).
 *
 * Follows the WHATWG HTML "event stream interpretation" algorithm
 * (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
 * UTF-8 decoded as a stream, one leading BOM dropped, lines end at CRLF, LF or
 * CR only (U+2028 is not a line end), a CR at the end of a chunk waits for the
 * next chunk to know whether an LF belongs to it.  Unlike `EventSource`,
 * comments are surfaced (the bridge's heartbeats are `: hb <ms>`), and every
 * buffer has a limit: a line or an event's data past its limit raises
 * {@link SSELimitError} naming the limit and the size.
 *
 * Bytes (or strings) go in through {@link SSEParser.feed}; the items that the
 * chunk completed come out, in stream order.
 */

/** A dispatched event (a blank line ended a block with at least one `data`). */
export interface SSEMessage {
  kind: "event";
  /** The `event` field, or `"message"` when absent. */
  event: string;
  /** The `data` lines joined with `"\n"`. */
  data: string;
  /** The last event ID buffer at dispatch (it persists across events). */
  id: string;
}

/** A comment line (`:` first); `text` is everything after the colon. */
export interface SSEComment {
  kind: "comment";
  text: string;
}

/** A valid `retry` field: the reconnection time the server asks for. */
export interface SSERetry {
  kind: "retry";
  ms: number;
}

export type SSEItem = SSEMessage | SSEComment | SSERetry;

export interface SSELimits {
  /** Longest line accepted, in UTF-16 code units. */
  maxLineLength: number;
  /** Largest `data` of one event accepted, in UTF-16 code units. */
  maxEventSize: number;
}

export const DEFAULT_SSE_LIMITS: SSELimits = {
  maxLineLength: 1 << 20,
  maxEventSize: 4 << 20,
};

/** A security limit was hit; the message gives the size and the limit. */
export class SSELimitError extends Error {
  override name = "SSELimitError";
  constructor(
    readonly limit: keyof SSELimits,
    readonly size: number,
    readonly max: number,
  ) {
    const what = limit === "maxLineLength" ? "line" : "event data";
    super(`SSE ${what} of ${size} characters exceeds the limit of ${max} characters (${limit})`);
  }
}

const LINE_END = /[\r\n]/g;

export class SSEParser {
  private readonly limits: SSELimits;
  private decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  /** The unterminated tail of the current line. */
  private partial = "";
  /** The previous chunk ended with CR: an LF at the start of the next one belongs to it. */
  private skipLF = false;
  /** No character seen yet: a leading U+FEFF is a BOM. */
  private atStart = true;
  private dataLines: string[] = [];
  private dataSize = 0;
  private eventType = "";
  private lastEventIdBuffer = "";
  private retryMs: number | null = null;

  constructor(limits: Partial<SSELimits> = {}) {
    this.limits = { ...DEFAULT_SSE_LIMITS, ...limits };
  }

  /** The last event ID buffer (what a reconnect sends as `Last-Event-ID`). */
  get lastEventId(): string {
    return this.lastEventIdBuffer;
  }

  /** The last valid `retry` value, or null. */
  get retry(): number | null {
    return this.retryMs;
  }

  /** Feed one chunk of the body; returns the items it completed. */
  feed(chunk: Uint8Array | string): SSEItem[] {
    const text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const out: SSEItem[] = [];
    this.pushText(text, out);
    return out;
  }

  /**
   * The body ended.  Flushes the decoder; per the spec an unterminated line or
   * an event without its blank line is discarded, never dispatched.
   */
  end(): SSEItem[] {
    const out: SSEItem[] = [];
    this.pushText(this.decoder.decode(), out);
    this.partial = "";
    this.resetEvent();
    return out;
  }

  private pushText(text: string, out: SSEItem[]): void {
    if (text.length === 0) return;
    let start = 0;
    if (this.atStart) {
      this.atStart = false;
      if (text.charCodeAt(0) === 0xfeff) start = 1;
    }
    if (this.skipLF && start < text.length) {
      this.skipLF = false;
      if (text.charCodeAt(start) === 0x0a) start += 1;
    }
    LINE_END.lastIndex = start;
    let match: RegExpExecArray | null;
    while ((match = LINE_END.exec(text)) !== null) {
      const end = match.index;
      const piece = text.slice(start, end);
      const line = this.partial.length > 0 ? this.partial + piece : piece;
      this.partial = "";
      this.checkLine(line.length);
      this.processLine(line, out);
      start = end + 1;
      if (text.charCodeAt(end) === 0x0d) {
        if (end + 1 === text.length) {
          this.skipLF = true;
        } else if (text.charCodeAt(end + 1) === 0x0a) {
          start = end + 2;
        }
      }
      LINE_END.lastIndex = start;
    }
    if (start < text.length) {
      this.checkLine(this.partial.length + text.length - start);
      this.partial += text.slice(start);
    }
  }

  private checkLine(size: number): void {
    if (size > this.limits.maxLineLength) {
      throw new SSELimitError("maxLineLength", size, this.limits.maxLineLength);
    }
  }

  private processLine(line: string, out: SSEItem[]): void {
    if (line.length === 0) {
      this.dispatch(out);
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) {
      out.push({ kind: "comment", text: line.slice(1) });
      return;
    }
    let field: string;
    let value: string;
    if (colon < 0) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
    }
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data": {
        // +1 for the "\n" that joins it to the next data line.
        const size = this.dataSize + value.length + (this.dataLines.length > 0 ? 1 : 0);
        if (size > this.limits.maxEventSize) {
          throw new SSELimitError("maxEventSize", size, this.limits.maxEventSize);
        }
        this.dataLines.push(value);
        this.dataSize = size;
        break;
      }
      case "id":
        if (!value.includes("\0")) this.lastEventIdBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) {
          this.retryMs = Number(value);
          out.push({ kind: "retry", ms: this.retryMs });
        }
        break;
      default:
        // Unknown fields are ignored (spec).
        break;
    }
  }

  private dispatch(out: SSEItem[]): void {
    if (this.dataLines.length > 0) {
      out.push({
        kind: "event",
        event: this.eventType === "" ? "message" : this.eventType,
        data: this.dataLines.join("\n"),
        id: this.lastEventIdBuffer,
      });
    }
    this.resetEvent();
  }

  private resetEvent(): void {
    this.dataLines = [];
    this.dataSize = 0;
    this.eventType = "";
  }
}

/**
 * The bridge's heartbeat comment `: hb <now_ms>` → the bridge time, else null.
 * (The comment text keeps the space after the colon, as the spec does.)
 */
export function parseHeartbeatComment(text: string): number | null {
  const match = /^ ?hb (-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*$/.exec(text);
  if (match === null) return null;
  const ms = Number(match[1]);
  return Number.isFinite(ms) ? ms : null;
}
