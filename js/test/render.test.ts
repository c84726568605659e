import { test } from "node:test";
import assert from "node:assert/strict";
import { StreamRenderer, renderMarkdownInto, type FrameReport } from "../src/render";
import { FakeFrames, makeDom, markdownFor, markdownTokens } from "./helpers/dom";

const { document, window } = makeDom();
const markdown = markdownFor(window);

function setup(): { el: HTMLElement; frames: FakeFrames; reports: FrameReport[]; renderer: StreamRenderer; parsed: { chars: number } } {
  const el = document.createElement("div");
  document.body.append(el);
  const frames = new FakeFrames();
  const reports: FrameReport[] = [];
  const parsed = { chars: 0 };
  const counting = (md: string): string => {
    parsed.chars += md.length;
    return markdown(md);
  };
  const renderer = new StreamRenderer(el, { scheduler: frames, markdown: counting, onFrame: (r) => reports.push(r) });
  return { el, frames, reports, renderer, parsed };
}

const norm = (s: string | null): string => (s ?? "").replace(/\s+/g, " ").trim();

test("append only buffers: no DOM change until the frame, one frame requested", () => {
  const { el, frames, renderer } = setup();
  const before = el.innerHTML;
  for (let i = 0; i < 100; i += 1) renderer.append("word ");
  assert.equal(el.innerHTML, before);
  assert.equal(frames.requested, 1);
  frames.tick();
  assert.match(el.textContent ?? "", /^word word/);
  assert.equal(el.dataset.tokens, "100");
});

test("10k tokens/s at 60 fps: exactly one DOM update per frame, every token shown", () => {
  const { el, frames, reports, renderer } = setup();
  const tokens = markdownTokens(20_000, 7);
  const perFrame = Math.ceil(10_000 / 60); // 167 tokens between two frames
  let fed = 0;
  let ticks = 0;
  while (fed < tokens.length) {
    for (let i = 0; i < perFrame && fed < tokens.length; i += 1) renderer.append(tokens[fed++]!);
    assert.equal(frames.waiting, 1, "one frame pending, whatever the number of tokens");
    assert.equal(frames.tick(), 1);
    ticks += 1;
    assert.equal(reports.length, ticks, "one update per frame");
    assert.equal(el.dataset.tokens, String(fed), "data-tokens counts tokens shown");
  }
  assert.equal(frames.requested, ticks);
  renderer.finish();
  // Streaming then finishing shows the same text as rendering it all at once.
  const whole = document.createElement("div");
  renderMarkdownInto(whole, tokens.join(""), markdown);
  assert.equal(norm(el.textContent), norm(whole.textContent));
  assert.equal(el.querySelectorAll("pre code").length, whole.querySelectorAll("pre code").length);
});

test("per-frame re-render cost is bounded by the open block, not the message", () => {
  const { frames, reports, renderer } = setup();
  const tokens = markdownTokens(40_000, 11); // > 100k characters
  const perFrame = 167;
  for (let fed = 0; fed < tokens.length; ) {
    for (let i = 0; i < perFrame && fed < tokens.length; i += 1) renderer.append(tokens[fed++]!);
    frames.tick();
  }
  const total = reports[reports.length - 1]!.totalChars;
  assert.ok(total > 100_000, `message has ${total} chars`);
  const quarter = Math.floor(reports.length / 4);
  const maxOf = (rs: FrameReport[]): number => Math.max(...rs.map((r) => r.parsedChars));
  const early = maxOf(reports.slice(0, quarter));
  const late = maxOf(reports.slice(-quarter));
  // The largest block of this generator is ~1.3k chars; a frame parses at most
  // a couple of blocks plus what arrived.  Whole-message re-rendering would
  // reach 100k here.
  assert.ok(late < 4000, `late frames parse at most ${late} chars`);
  assert.ok(late <= early * 2, `cost does not grow with the message (early ${early}, late ${late})`);
  const sum = reports.reduce((s, r) => s + r.parsedChars, 0);
  assert.ok(sum < total * 12, `total parse work ${sum} stays linear in ${total}`);
});

test("an open code fence grows by appending to a text node; highlighted once closed", () => {
  const { el, frames, reports, renderer } = setup();
  renderer.append("Intro paragraph.\n\n```python\n");
  frames.tick();
  const lines = ["def f(x):\n", "\n", "    return x + 1\n", "\n", "print(f(2))\n"];
  for (const line of lines) {
    renderer.append(line);
    frames.tick();
    const r = reports[reports.length - 1]!;
    assert.equal(r.parsedChars, 0, "no Markdown parse while the fence is open");
    assert.equal(r.appendedChars, line.length);
  }
  const code = el.querySelector(".streamchat-open pre code");
  assert.ok(code);
  assert.equal(code.textContent, lines.join(""));
  assert.equal(code.querySelector("span"), null, "not highlighted while open");
  renderer.append("```\nDone.");
  frames.tick();
  const frozen = el.querySelectorAll(".streamchat-block:not(.streamchat-open)");
  assert.equal(frozen.length, 2);
  assert.ok(frozen[1]!.querySelector("code.language-python .hljs-keyword"), "highlighted when closed");
  assert.equal(norm(el.querySelector(".streamchat-open")!.textContent), "Done.");
});

test("finish() renders a still-open fence with full fidelity", () => {
  const { el, renderer } = setup();
  renderer.append("```js\nconst a = 1;\n");
  renderer.finish();
  assert.ok(el.querySelector("code.language-js .hljs-keyword"));
  assert.equal(el.querySelector(".streamchat-open"), null);
  renderer.append("ignored");
  assert.doesNotMatch(el.textContent ?? "", /ignored/);
});

test("frozen blocks are never touched again", () => {
  const { el, frames, renderer } = setup();
  renderer.append("First paragraph.\n\nSecond");
  frames.tick();
  const first = el.firstElementChild!;
  assert.equal(norm(first.textContent), "First paragraph.");
  for (let i = 0; i < 50; i += 1) {
    renderer.append(" more");
    frames.tick();
  }
  assert.equal(el.firstElementChild, first);
  assert.equal(norm(first.textContent), "First paragraph.");
});

test("model output is sanitized", () => {
  const { el, renderer } = setup();
  renderer.append('<img src=x onerror="alert(1)"> [x](javascript:alert(1)) <script>alert(1)</script> [ok](https://example.com)');
  renderer.finish();
  assert.equal(el.querySelector("script"), null);
  assert.equal(el.querySelector("img")?.getAttribute("onerror") ?? null, null);
  for (const a of el.querySelectorAll("a")) assert.doesNotMatch(a.getAttribute("href") ?? "", /javascript:/);
  const ok = [...el.querySelectorAll("a")].find((a) => a.textContent === "ok");
  assert.equal(ok?.getAttribute("target"), "_blank");
  assert.equal(ok?.getAttribute("rel"), "noopener noreferrer");
});

// ---------------------------------------------------------------- long paragraphs

import { isPlainParagraph, LONG_PARAGRAPH, safeRunEnd, TAIL_MAX } from "../src/render";

/** A renderer with inline Markdown (as in the widget), counting what each kind parses. */
function setupInline(): {
  el: HTMLElement;
  frames: FakeFrames;
  reports: FrameReport[];
  renderer: StreamRenderer;
  parsed: { block: number; inline: number };
} {
  const el = document.createElement("div");
  document.body.append(el);
  const frames = new FakeFrames();
  const reports: FrameReport[] = [];
  const parsed = { block: 0, inline: 0 };
  const block = (md: string): string => {
    parsed.block += md.length;
    return markdown(md);
  };
  const inline = (md: string): string => {
    parsed.inline += md.length;
    return markdown.inline!(md);
  };
  const renderer = new StreamRenderer(el, { scheduler: frames, markdown: block, inline, onFrame: (r) => reports.push(r) });
  return { el, frames, reports, renderer, parsed };
}

/** One long paragraph of prose (what the demo model and many LLMs write), in small tokens. */
function proseTokens(count: number, extra: string[] = []): string[] {
  const words = ["Alice", "was", "beginning", "to", "get", "very", "tired,", "of", "sitting", "by", "her", "sister.", ...extra];
  const out: string[] = [];
  for (let i = 0; i < count; i += 1) out.push((i ? " " : "") + words[(i * 7 + (i >> 3)) % words.length]!);
  return out;
}

test("a long plain paragraph costs the new text per frame, not the paragraph", () => {
  const { el, frames, reports, renderer, parsed } = setupInline();
  const tokens = proseTokens(6000); // ~35k characters, no blank line anywhere
  for (let fed = 0; fed < tokens.length; ) {
    for (let i = 0; i < 60 && fed < tokens.length; i += 1) renderer.append(tokens[fed++]!);
    frames.tick();
  }
  const text = tokens.join("");
  assert.ok(text.length > 30_000);
  const late = reports.slice(-20).map((r) => r.parsedChars);
  assert.ok(Math.max(...late) < TAIL_MAX + 2 * 60 * 12, `late frames parse ${Math.max(...late)} chars`);
  assert.ok(el.querySelectorAll("p.streamchat-para > span").length > 30, "finished runs are frozen");
  const before = parsed.block;
  renderer.finish();
  assert.equal(parsed.block, before, "plain runs are already the final render: no whole re-parse");
  const whole = document.createElement("div");
  renderMarkdownInto(whole, text, markdown);
  assert.equal(norm(el.textContent), norm(whole.textContent));
  assert.equal(el.querySelectorAll("p").length, 1, "still one paragraph");
  assert.ok(parsed.inline + parsed.block < text.length * 3, `total work ${parsed.inline} stays linear`);
});

test("emphasis and code in a long paragraph: bounded while streaming, exact at the end", () => {
  const { el, frames, reports, renderer } = setupInline();
  const tokens = proseTokens(3000, ["**bold**", "`x = 1`", "_it_", "[a link](https://example.com)", "snake_case"]);
  for (let fed = 0; fed < tokens.length; ) {
    for (let i = 0; i < 40 && fed < tokens.length; i += 1) renderer.append(tokens[fed++]!);
    frames.tick();
  }
  const late = reports.slice(-20).map((r) => r.parsedChars);
  assert.ok(Math.max(...late) < TAIL_MAX + 2 * 40 * 30, `late frames parse ${Math.max(...late)} chars`);
  renderer.finish();
  const whole = document.createElement("div");
  renderMarkdownInto(whole, tokens.join(""), markdown);
  assert.equal(el.querySelector(".streamchat-block")!.innerHTML, whole.innerHTML, "finish() renders it whole");
});

test("a long paragraph that turns into a heading or gains a list is rendered as such", () => {
  const { el, frames, renderer } = setupInline();
  const text = proseTokens(400).join("");
  assert.ok(text.length > LONG_PARAGRAPH);
  renderer.append(text);
  frames.tick();
  assert.ok(el.querySelector("p.streamchat-para"));
  renderer.append("\n---\n");
  frames.tick();
  assert.ok(el.querySelector("h2"), "setext underline: the paragraph was a heading");
  assert.equal(el.querySelector("p.streamchat-para"), null);
});

test("where a run may end: a word boundary with nothing inline left open", () => {
  assert.equal(safeRunEnd("one two three", 100), 8);
  assert.equal(safeRunEnd("one **two three** four five", 100), 23);
  assert.equal(safeRunEnd("one **two three** four five", 20), 18, "within the limit");
  assert.equal(safeRunEnd("one **two three", 100), 4);
  assert.equal(safeRunEnd("a `code span` b c", 100), 16);
  assert.equal(safeRunEnd("2 * 3 is six really", 100), 13, "a lone star emphasises nothing");
  assert.equal(safeRunEnd("snake_case is fine here", 100), 19, "intraword underscore");
  assert.equal(safeRunEnd("see [the docs](x 'a title') now", 100), 28, "not inside a link");
  assert.equal(safeRunEnd("a <span class='x'> b", 100), 19, "not inside a tag");
  assert.equal(safeRunEnd("a <span class='x", 100), 2);
  assert.equal(safeRunEnd("hard  \nbreak", 100), 0, "never before a line break");
  assert.ok(isPlainParagraph("Just text\nand more text."));
  assert.equal(isPlainParagraph("Text\n- item"), false);
  assert.equal(isPlainParagraph("Text\n\n    code"), false);
  assert.equal(isPlainParagraph("# Heading"), false);
  assert.equal(isPlainParagraph("Text\n1. item"), false);
});
