/**
 * Clock alignment between the browser and the server (`GET api/clock`).
 *
 * NTP's simplest form: the browser notes `t0`, asks for the server's `now_ms`,
 * notes `t1`.  Assuming the answer was stamped half-way through the round
 * trip, `offset = server - (t0 + t1) / 2`, wrong by at most `(t1 - t0) / 2`.
 * Several samples are taken and the one with the smallest round trip wins,
 * because it has the tightest bound.  `browser + offset` is then a server time.
 */

/** One ping: browser send `t0`, browser receive `t1`, server `now_ms`. */
export interface ClockSample {
  t0: number;
  t1: number;
  server: number;
}

export interface ClockAlignment {
  /** Add to a browser time to get the server's clock. */
  offsetMs: number;
  /** The offset is right to within +/- this (half the best round trip). */
  errorMs: number;
  /** The best round trip. */
  rttMs: number;
  /** How many samples were usable. */
  samples: number;
}

/** The browser's clock as epoch ms, at sub-millisecond resolution, monotonic. */
export function browserNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Pick the min-RTT sample and derive offset and error bound.
 * Samples with a negative round trip (a clock step) are ignored.
 */
export function alignClock(samples: readonly ClockSample[]): ClockAlignment {
  let best: ClockSample | null = null;
  let usable = 0;
  for (const s of samples) {
    const rtt = s.t1 - s.t0;
    if (!(rtt >= 0) || !Number.isFinite(s.server)) continue;
    usable += 1;
    if (best === null || rtt < best.t1 - best.t0) best = s;
  }
  if (best === null) throw new Error(`clock alignment needs at least one usable sample, got ${samples.length}`);
  const rtt = best.t1 - best.t0;
  return {
    offsetMs: best.server - (best.t0 + best.t1) / 2,
    errorMs: rtt / 2,
    rttMs: rtt,
    samples: usable,
  };
}

/** A browser time expressed on the server's clock. */
export function toServerTime(browserMs: number, alignment: Pick<ClockAlignment, "offsetMs">): number {
  return browserMs + alignment.offsetMs;
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface MeasureClockOptions {
  /** The clock URL, e.g. `{base}streamchat/api/clock`. */
  url: string;
  fetch: FetchLike;
  headers?: Record<string, string>;
  /** How many pings (default 5). */
  samples?: number;
  now?: () => number;
}

/**
 * Take `samples` pings one after another and align on the best.  A ping that
 * fails is skipped; if all fail the last error is thrown.
 */
export async function measureClock(options: MeasureClockOptions): Promise<ClockAlignment> {
  const now = options.now ?? browserNowMs;
  const count = options.samples ?? 5;
  const taken: ClockSample[] = [];
  let lastError: unknown = null;
  for (let i = 0; i < count; i += 1) {
    try {
      const t0 = now();
      const response = await options.fetch(options.url, {
        headers: options.headers,
        cache: "no-store",
      });
      const body: unknown = await response.json();
      const t1 = now();
      if (!response.ok) throw new Error(`clock endpoint answered HTTP ${response.status}`);
      const server = (body as { now_ms?: unknown } | null)?.now_ms;
      if (typeof server !== "number") throw new Error(`clock endpoint gave no numeric now_ms`);
      taken.push({ t0, t1, server });
    } catch (exc) {
      lastError = exc;
    }
  }
  if (taken.length === 0) throw lastError instanceof Error ? lastError : new Error(String(lastError));
  return alignClock(taken);
}

/**
 * The same alignment over any request/answer channel (the kernel comm uses it):
 * `ask()` resolves with the other side's `now_ms`.
 */
export async function measureClockWith(
  ask: () => Promise<number>,
  samples = 5,
  now: () => number = browserNowMs,
): Promise<ClockAlignment> {
  const taken: ClockSample[] = [];
  let lastError: unknown = null;
  for (let i = 0; i < samples; i += 1) {
    try {
      const t0 = now();
      const server = await ask();
      taken.push({ t0, t1: now(), server });
    } catch (exc) {
      lastError = exc;
      break; // a channel that timed out once will time out again
    }
  }
  if (taken.length === 0) throw lastError instanceof Error ? lastError : new Error(String(lastError));
  return alignClock(taken);
}
