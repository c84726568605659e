import { test } from "node:test";
import assert from "node:assert/strict";
import { computeStats, formatMs, formatStats, median, messageStats } from "../src/stats";
import { textEnds, TimingRecorder } from "../src/timing";
import type { Timing } from "../src/model";

test("median", () => {
  assert.equal(median([]), null);
  assert.equal(median([3]), 3);
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

test("recorder: rows per token, ttft, duration, tokens from usage else chunks", () => {
  const r = new TimingRecorder(1000, 50, 0.5);
  r.record({ type: "start", seq: 0, recv_ms: 1010, send_ms: 1010.5 }, 1012, 0);
  r.record({ type: "token", seq: 1, recv_ms: 1100, send_ms: 1100.25, emit_ms: 1099, text: "ab", chunks: 1 }, 1101.04, 2);
  r.record({ type: "heartbeat", seq: 1, recv_ms: 1150 }, 1151, 2);
  r.record({ type: "token", seq: 3, recv_ms: 1200, text: "cde", chunks: 2 }, 1202, 5);
  r.record({ type: "done", seq: 4, recv_ms: 1300 }, 1301, 5);
  let t = r.snapshot();
  assert.deepEqual(t, {
    sent_ms: 1000,
    clock_offset_ms: 50,
    clock_error_ms: 0.5,
    ttft_ms: 101,
    duration_ms: 301,
    tokens: 3,
    arrivals: 2,
    chunks: 3,
    events: [
      [1, 1099, 1100, 1100.3, 1101, 2],
      [3, null, 1200, null, 1202, 5],
    ],
  });
  r.record({ type: "usage", seq: 5, recv_ms: 1300, completion_tokens: 7 }, 1302, 5);
  t = r.snapshot();
  assert.equal(t.tokens, 7);
});

function timing(events: Timing["events"], extra: Partial<Timing> = {}): Timing {
  return {
    sent_ms: 0,
    clock_offset_ms: 0,
    clock_error_ms: 0.4,
    ttft_ms: events.length ? events[0]![4] : null,
    duration_ms: events.length ? events[events.length - 1]![4] + 1 : 1,
    tokens: events.length,
    arrivals: events.length,
    chunks: events.length,
    events,
    ...extra,
  };
}

test("bridge share, leg and upstream medians; tokens/s between first and last token", () => {
  // [seq, emit, bridge recv, bridge send, browser recv, len]
  const t = timing([
    [1, 99, 100, 100.5, 102, 1],
    [2, 199, 200, 200.2, 201.5, 2],
    [3, 298, 300, 300.3, 302.3, 3],
  ]);
  const s = computeStats(t);
  assert.equal(s.ttftMs, 102);
  assert.ok(Math.abs(s.bridgeMs! - 0.3) < 1e-9);
  assert.ok(Math.abs(s.legMs! - 1.5) < 1e-9);
  assert.equal(s.legFrom, "bridge");
  assert.equal(s.upstreamMs, 1);
  assert.equal(s.clockErrorMs, 0.4);
  assert.ok(Math.abs(s.tokensPerSec! - 2000 / 200.3) < 1e-9);
  assert.ok(Math.abs(s.bridgeShare! - 0.3 / 1.8) < 1e-9);
  const text = formatStats(s, { backend: "demo-sse", protocol: "openai", path: "bridge", leg: "sse" });
  assert.match(text.text, /^TTFT 102 ms · 10\.0 tok\/s · 3 tok · 3 arrivals · 3 chunks · demo-sse · openai · bridge · sse · bridge 0\.30 ms \(17%\) · leg 1\.50 ms ± 0\.40 ms$/);
  assert.match(text.title, /bridge send → browser receive \(median, cross-clock\): 1\.50 ms ± 0\.40 ms/);
});

test("kernel path: no send_ms, leg measured from kernel receive; unaligned clocks are said", () => {
  const t = timing([[0, null, 10, null, 15, 1], [1, null, 20, null, 27, 2]], { clock_error_ms: null });
  const s = computeStats(t);
  assert.equal(s.bridgeMs, null);
  assert.equal(s.legFrom, "kernel");
  assert.equal(s.legMs, 6);
  assert.equal(s.upstreamMs, null);
  assert.match(formatStats(s).text, /comm 6\.00 ms \(clocks not aligned\)/);
});

test("chunks vs arrivals stay distinct; too few tokens give no rate", () => {
  const s = computeStats(timing([[2, null, 1, 1, 5, 9]], { tokens: 3, chunks: 3, arrivals: 1 }));
  assert.equal(s.tokensPerSec, null);
  assert.match(formatStats(s).text, /3 tok · 1 arrivals · 3 chunks/);
  assert.equal(messageStats({ id: "x", role: "assistant", content: "" }), null);
});

test("formatMs", () => {
  assert.equal(formatMs(0.423), "0.42 ms");
  assert.equal(formatMs(12.34), "12.3 ms");
  assert.equal(formatMs(412.4), "412 ms");
  assert.equal(formatMs(3210), "3.21 s");
});

test("kernel path with the kernel's send_ms: the kernel plays the bridge's part", () => {
  const t = timing([[0, null, 10, 10.5, 15, 1]]);
  const text = formatStats(computeStats(t), { path: "kernel" }).text;
  assert.match(text, /kernel 0\.50 ms \(10%\) · comm 4\.50 ms ± 0\.40 ms/);
});

test("textEnds: cumulative lengths as recorded here, per-token lengths summed", () => {
  const row = (len: number): Timing["events"][number] => [0, null, null, null, 0, len];
  assert.deepEqual(textEnds([row(2), row(5), row(9)], 9), [2, 5, 9]);
  assert.deepEqual(textEnds([row(2), row(3), row(4)], 9), [2, 5, 9]);
  assert.deepEqual(textEnds([row(2), row(2)], 4), [2, 4]);
  assert.deepEqual(textEnds([row(4)], 4), [4]);
});
