/** A jsdom window and a fake frame scheduler for renderer / widget tests. */
import { JSDOM } from "jsdom";
import type { FrameScheduler } from "../../src/render";
import { createMarkdown, type MarkdownToHtml, type WindowLike } from "../../src/markdown";

export function makeDom(html = "<!doctype html><html><body></body></html>"): { window: JSDOM["window"]; document: Document } {
  const dom = new JSDOM(html, { url: "http://localhost:8888/lab", pretendToBeVisual: true });
  return { window: dom.window, document: dom.window.document };
}

export function markdownFor(window: JSDOM["window"]): MarkdownToHtml {
  return createMarkdown(window as unknown as WindowLike);
}

/** Frames run only when the test says so; counts requests per frame. */
export class FakeFrames implements FrameScheduler {
  private pending = new Map<number, () => void>();
  private nextId = 1;
  requested = 0;

  request(callback: () => void): number {
    const id = this.nextId++;
    this.pending.set(id, callback);
    this.requested += 1;
    return id;
  }

  cancel(handle: number): void {
    this.pending.delete(handle);
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** Run one frame: every callback requested before it. Returns how many ran. */
  tick(): number {
    const callbacks = [...this.pending.values()];
    this.pending.clear();
    for (const cb of callbacks) cb();
    return callbacks.length;
  }
}

/** A deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ["stream", "token", "bridge", "latency", "the", "a", "of", "**bold**", "`code`", "browser", "kernel", "frame"];

/** A long Markdown reply: paragraphs, lists, fenced code, split into small tokens. */
export function markdownTokens(count: number, seed = 1): string[] {
  const random = rng(seed);
  const tokens: string[] = [];
  let text = "";
  while (tokens.length < count) {
    const kind = random();
    if (kind < 0.6) {
      const n = 20 + Math.floor(random() * 80);
      for (let i = 0; i < n; i += 1) text += (i ? " " : "") + WORDS[Math.floor(random() * WORDS.length)];
      text += ".\n\n";
    } else if (kind < 0.8) {
      for (let i = 0; i < 4; i += 1) text += `- item ${i} ${WORDS[Math.floor(random() * WORDS.length)]}\n`;
      text += "\n";
    } else {
      text += "```python\n";
      const lines = 5 + Math.floor(random() * 25);
      for (let i = 0; i < lines; i += 1) text += i % 7 === 3 ? "\n" : `def f${i}(x):\n    return x + ${i}  # note\n`;
      text += "```\n";
    }
    while (text.length > 0 && tokens.length < count) {
      const n = 1 + Math.floor(random() * 6);
      tokens.push(text.slice(0, n));
      text = text.slice(n);
    }
  }
  return tokens;
}
