/**
 * A reply's stats badge, computed from its recorded {@link Timing} alone (so
 * a saved notebook shows the same figures after a reload).
 *
 * Same-clock figures are exact: TTFT and tokens/s use browser times only; the
 * bridge's own share (`send_ms - recv_ms`) uses the bridge clock only.  Figures
 * that subtract one clock from another carry the clock offset's error bound:
 * the leg (browser receive - bridge send) is right to +/- `clock_error_ms`.
 */

import type { Message, Timing } from "./model";

export interface ReplyStats {
  ttftMs: number | null;
  durationMs: number;
  tokens: number;
  arrivals: number;
  chunks: number;
  /** (tokens - 1) over the span from first to last token arrival; null if too few. */
  tokensPerSec: number | null;
  /** Median over tokens of bridge `send_ms - recv_ms` (bridge clock only). */
  bridgeMs: number | null;
  /** Median over tokens of browser receive - bridge send (or kernel receive). */
  legMs: number | null;
  /** What `legMs` is measured from. */
  legFrom: "bridge" | "kernel" | null;
  /** Median over tokens of bridge `recv_ms - emit_ms`: backend to bridge. */
  upstreamMs: number | null;
  /** Error bound of every cross-clock figure (`legMs`); null when unaligned. */
  clockErrorMs: number | null;
  /** `bridgeMs` as a share of bridge receive -> browser receive, 0..1. */
  bridgeShare: number | null;
}

export interface ReplyMeta {
  backend?: string;
  model?: string;
  protocol?: string;
  leg?: string;
  path?: string;
}

/** The median of `values`, or null for none. */
export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Compute the stats of one reply from its timing. */
export function computeStats(timing: Timing): ReplyStats {
  const bridge: number[] = [];
  const leg: number[] = [];
  const upstream: number[] = [];
  let legFrom: ReplyStats["legFrom"] = null;
  for (const [, emit, recv, send, browser] of timing.events) {
    if (send !== null && recv !== null) bridge.push(send - recv);
    if (send !== null) {
      leg.push(browser - send);
      legFrom = "bridge";
    } else if (recv !== null) {
      leg.push(browser - recv);
      legFrom ??= "kernel";
    }
    if (emit !== null && recv !== null) upstream.push(recv - emit);
  }
  const rows = timing.events;
  let tokensPerSec: number | null = null;
  if (rows.length >= 2 && timing.tokens >= 2) {
    const span = rows[rows.length - 1]![4] - rows[0]![4];
    if (span > 0) tokensPerSec = ((timing.tokens - 1) * 1000) / span;
  }
  const bridgeMs = median(bridge);
  const legMs = median(leg);
  const total = bridgeMs !== null && legMs !== null ? bridgeMs + legMs : null;
  return {
    ttftMs: timing.ttft_ms,
    durationMs: timing.duration_ms,
    tokens: timing.tokens,
    arrivals: timing.arrivals,
    chunks: timing.chunks,
    tokensPerSec,
    bridgeMs,
    legMs,
    legFrom,
    upstreamMs: median(upstream),
    clockErrorMs: timing.clock_error_ms,
    bridgeShare: total !== null && total > 0 && bridgeMs !== null ? Math.max(0, bridgeMs) / total : null,
  };
}

/** A duration for humans: 0.42 ms, 12.3 ms, 412 ms, 3.21 s. */
export function formatMs(ms: number): string {
  const a = Math.abs(ms);
  if (a >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (a >= 100) return `${ms.toFixed(0)} ms`;
  if (a >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

/** A cross-clock figure with its bound, e.g. `1.42 ms ± 0.30 ms`. */
function withBound(ms: number, errorMs: number | null): string {
  return errorMs === null ? `${formatMs(ms)} (clocks not aligned)` : `${formatMs(ms)} ± ${formatMs(errorMs)}`;
}

export interface StatsText {
  /** The badge, one line. */
  text: string;
  /** A longer explanation, one figure per line (for a tooltip). */
  title: string;
}

/** The badge text for a reply: figures that exist, in a fixed order. */
export function formatStats(stats: ReplyStats, meta: ReplyMeta = {}): StatsText {
  const parts: string[] = [];
  const lines: string[] = [];
  if (stats.ttftMs !== null) {
    parts.push(`TTFT ${formatMs(stats.ttftMs)}`);
    lines.push(`time to first token (from send, browser clock): ${formatMs(stats.ttftMs)}`);
  }
  if (stats.tokensPerSec !== null) {
    parts.push(`${stats.tokensPerSec.toFixed(1)} tok/s`);
    lines.push(`rate between first and last token: ${stats.tokensPerSec.toFixed(1)} tokens/s`);
  }
  parts.push(`${stats.tokens} tok · ${stats.arrivals} arrivals · ${stats.chunks} chunks`);
  lines.push(
    `${stats.tokens} tokens; the browser received ${stats.arrivals} token events carrying ${stats.chunks} backend chunks`,
  );
  const route = [meta.backend, meta.protocol, meta.path, meta.leg].filter((x): x is string => !!x);
  if (route.length > 0) {
    parts.push(route.join(" · "));
    lines.push(`route: ${route.join(" → ")}`);
  }
  if (stats.upstreamMs !== null) {
    lines.push(`backend emit → bridge receive (median, backend and server clocks): ${formatMs(stats.upstreamMs)}`);
  }
  // On the kernel path the kernel plays the bridge's part and the comm is the leg.
  const hop = meta.path === "kernel" || stats.legFrom === "kernel" ? "kernel" : "bridge";
  const leg = hop === "kernel" ? "comm" : "leg";
  if (stats.bridgeMs !== null) {
    const share = stats.bridgeShare === null ? "" : ` (${Math.round(stats.bridgeShare * 100)}%)`;
    parts.push(`${hop} ${formatMs(stats.bridgeMs)}${share}`);
    lines.push(`${hop} receive → ${hop} send (median, ${hop} clock): ${formatMs(stats.bridgeMs)}${share}`);
  }
  if (stats.legMs !== null) {
    const from = stats.legFrom === "kernel" ? "receive" : "send";
    parts.push(`${leg} ${withBound(stats.legMs, stats.clockErrorMs)}`);
    lines.push(`${hop} ${from} → browser receive (median, cross-clock): ${withBound(stats.legMs, stats.clockErrorMs)}`);
  }
  lines.push(`total ${formatMs(stats.durationMs)} from send to the last event`);
  return { text: parts.join(" · "), title: lines.join("\n") };
}

/** Badge text for a message, or null when it has no timing. */
export function messageStats(message: Message): StatsText | null {
  if (!message.timing) return null;
  return formatStats(computeStats(message.timing), message);
}
