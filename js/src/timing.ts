/**
 * Recording a reply's timing while it streams, into the compact {@link Timing}
 * shape that is saved with the message (and that stats.ts and replay read).
 */

import type { StreamEvent } from "./events";
import type { Timing, TimingEvent } from "./model";

/** Round to 0.1 ms: finer is noise, and the notebook stays smaller. */
export function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function stamp(ms: number | undefined): number | null {
  return ms === undefined ? null : round1(ms);
}

export class TimingRecorder {
  private readonly rows: TimingEvent[] = [];
  private arrivals = 0;
  private chunks = 0;
  private completionTokens: number | null = null;
  private firstTokenMs: number | null = null;
  private lastMs: number;

  /**
   * @param sentMs        when the request left the browser, on the server clock
   * @param clockOffsetMs server clock minus browser clock
   * @param clockErrorMs  the offset's error bound, null when not measured
   */
  constructor(
    readonly sentMs: number,
    readonly clockOffsetMs: number,
    readonly clockErrorMs: number | null,
  ) {
    this.lastMs = sentMs;
  }

  /**
   * Note one delivered event.  `browserMs` is its receive time on the server
   * clock; `textLength` the reply's `content.length` after applying it.
   */
  record(event: StreamEvent, browserMs: number, textLength: number): void {
    if (event.type === "heartbeat") return;
    this.lastMs = browserMs;
    if (event.type === "usage" && event.completion_tokens !== undefined) {
      this.completionTokens = event.completion_tokens;
    }
    if (event.type !== "token") return;
    this.arrivals += 1;
    this.chunks += event.chunks;
    if (this.firstTokenMs === null) this.firstTokenMs = browserMs;
    this.rows.push([
      event.seq,
      stamp(event.emit_ms),
      round1(event.recv_ms),
      stamp(event.send_ms),
      round1(browserMs),
      textLength,
    ]);
  }

  /** The timing so far (call once the terminal event is recorded). */
  snapshot(): Timing {
    return {
      sent_ms: round1(this.sentMs),
      clock_offset_ms: round1(this.clockOffsetMs),
      clock_error_ms: this.clockErrorMs === null ? null : round1(this.clockErrorMs),
      ttft_ms: this.firstTokenMs === null ? null : round1(this.firstTokenMs - this.sentMs),
      duration_ms: round1(this.lastMs - this.sentMs),
      tokens: this.completionTokens ?? this.chunks,
      arrivals: this.arrivals,
      chunks: this.chunks,
      events: this.rows.slice(),
    };
  }
}

/**
 * The reply's length after each recorded token, for replay.  Rows record the
 * cumulative `content.length` (what this widget writes); rows whose lengths
 * do not add up that way are read as per-token lengths and summed, so that
 * timings recorded elsewhere (the kernel's headless path) replay too.
 */
export function textEnds(rows: readonly TimingEvent[], contentLength: number): number[] {
  const raw = rows.map((row) => row[5]);
  const cumulative = raw.every((v, i) => i === 0 || v >= raw[i - 1]!) && raw[raw.length - 1] === contentLength;
  if (cumulative) return raw;
  let sum = 0;
  return raw.map((v) => Math.min(contentLength, (sum += v)));
}
