/**
 * `npm run bench`: per-frame cost of the streaming renderer versus re-rendering
 * the whole message each frame, and SSE parser throughput.  Runs under jsdom,
 * which is much slower than a browser: compare the columns, not the absolutes.
 */
import { performance } from "node:perf_hooks";
import { StreamRenderer, renderMarkdownInto, type FrameReport } from "../src/render";
import { SSEParser } from "../src/sse";
import { FakeFrames, makeDom, markdownFor, markdownTokens } from "../test/helpers/dom";

const { document, window } = makeDom();
const markdown = markdownFor(window);

function pct(values: number[], p: number): number {
  const s = values.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

function benchRenderer(tokens: string[], perFrame: number): void {
  const el = document.createElement("div");
  const frames = new FakeFrames();
  const reports: FrameReport[] = [];
  const r = new StreamRenderer(el, { scheduler: frames, markdown, onFrame: (x) => reports.push(x) });
  const times: number[] = [];
  const naive: number[] = [];
  const whole = document.createElement("div");
  let text = "";
  for (let fed = 0; fed < tokens.length; ) {
    for (let i = 0; i < perFrame && fed < tokens.length; i += 1) {
      r.append(tokens[fed]!);
      text += tokens[fed++]!;
    }
    let t = performance.now();
    frames.tick();
    times.push(performance.now() - t);
    if (reports.length % 10 === 0) {
      t = performance.now();
      renderMarkdownInto(whole, text, markdown);
      naive.push(performance.now() - t);
    }
  }
  const q = Math.floor(times.length / 4);
  const parsed = reports.map((x) => x.parsedChars);
  console.log(
    [
      `tokens ${tokens.length} (${text.length} chars), ${reports.length} frames of ${perFrame} tokens`,
      `  incremental: frame p50 ${pct(times, 50).toFixed(2)} ms, p95 ${pct(times, 95).toFixed(2)} ms;` +
        ` first quarter p50 ${pct(times.slice(0, q), 50).toFixed(2)} ms, last quarter p50 ${pct(times.slice(-q), 50).toFixed(2)} ms`,
      `  chars parsed per frame: p50 ${pct(parsed, 50)}, max ${Math.max(...parsed)}`,
      `  whole-message re-render (what a naive renderer pays per frame): first ${naive[0]!.toFixed(2)} ms, last ${naive[naive.length - 1]!.toFixed(2)} ms`,
    ].join("\n"),
  );
}

function benchSse(): void {
  const event = `id: 1\nevent: token\ndata: ${JSON.stringify({ type: "token", seq: 1, recv_ms: 1795448266123.4, send_ms: 1795448266123.6, text: "hello", chunks: 1 })}\n\n`;
  const bytes = new TextEncoder().encode(event.repeat(20000));
  for (const chunk of [64, 1024, 16384]) {
    const p = new SSEParser();
    const t = performance.now();
    let n = 0;
    for (let i = 0; i < bytes.length; i += chunk) n += p.feed(bytes.subarray(i, i + chunk)).length;
    const ms = performance.now() - t;
    console.log(`SSE parser, ${chunk}-byte chunks: ${n} events, ${((bytes.length / 1e6) / (ms / 1000)).toFixed(1)} MB/s, ${((n / ms) * 1000).toFixed(0)} events/s`);
  }
}

benchRenderer(markdownTokens(10_000, 3), 167);
benchRenderer(markdownTokens(40_000, 5), 167);
benchSse();
