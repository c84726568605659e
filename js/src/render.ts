/**
 * The frame-batched renderer of one streaming reply.
 *
 * `append(text)` only buffers and asks for a frame; whatever the token rate,
 * the DOM changes at most once per animation frame.  Each frame costs what the
 * new text costs, not the whole message (see blocks.ts): newly completed
 * blocks are rendered once and frozen, the open Markdown block is re-rendered,
 * and an open fenced code block grows by appending to one text node (it is
 * highlighted once, when it closes or at the end).  `finish()` does one final
 * full-fidelity render of the open block.
 *
 * One open block can itself be long: models often write a whole reply as one
 * paragraph.  A plain paragraph (no line that could start another kind of
 * block) longer than {@link LONG_PARAGRAPH} is therefore streamed in *runs*:
 * once the unfrozen tail passes {@link TAIL_MAX} characters, its first part, up
 * to a word boundary where no inline construct (emphasis, code span, link, HTML)
 * is left open, is rendered as inline Markdown into a `<span>` that is never
 * touched again; only the tail is re-rendered per frame.  If every frozen run
 * was plain text, those spans already are the whole-paragraph render and
 * `finish()` renders only the tail; otherwise it re-renders the block once.
 *
 * The frame scheduler and the Markdown function are injected, so tests run
 * with a fake clock and count exactly what each frame re-parsed.
 */

import { BlockSplitter, type OpenBlock } from "./blocks";
import { escapeHtml, type MarkdownToHtml } from "./markdown";

/** Asks for a callback before the next paint (requestAnimationFrame). */
export interface FrameScheduler {
  request(callback: () => void): number;
  cancel(handle: number): void;
}

/** The browser's requestAnimationFrame. */
export function animationFrames(win: Pick<Window, "requestAnimationFrame" | "cancelAnimationFrame">): FrameScheduler {
  return {
    request: (cb) => win.requestAnimationFrame(() => cb()),
    cancel: (handle) => win.cancelAnimationFrame(handle),
  };
}

/** What one frame did; `parsedChars` is the re-parse cost this design bounds. */
export interface FrameReport {
  /** 1-based frame number. */
  frame: number;
  /** Characters handed to Markdown this frame (new frozen blocks + open block). */
  parsedChars: number;
  /** Characters appended to an open code block's text node this frame. */
  appendedChars: number;
  /** Text that arrived since the previous frame. */
  newChars: number;
  /** Blocks frozen this frame. */
  frozenBlocks: number;
  /** The whole message length after this frame. */
  totalChars: number;
  /** Tokens (append calls) shown after this frame. */
  tokens: number;
}

/** Paragraphs longer than this (characters) stream in frozen runs. */
export const LONG_PARAGRAPH = 1024;
/** A run is frozen when the paragraph's unfrozen tail is longer than this. */
export const TAIL_MAX = 512;
/** The last characters always stay in the tail (the last word may be incomplete). */
const TAIL_KEEP = 64;
/** A line starting like this ends or re-types a paragraph (lists, headings, setext, tables, HTML...). */
const BLOCK_START = /^ {0,3}(?:[#>=|:~`<*+_-]|\d{1,9}[.)](?:\s|$))/m;
/** Characters that can make a run render differently alone than inside its paragraph. */
const INLINE_SPECIAL = /[`*_~[\]<>\\]/;

/** Whether `text` (an open block) is one plain paragraph, safe to stream in runs. */
export function isPlainParagraph(text: string): boolean {
  return !BLOCK_START.test(text) && !/\n[ \t]*\n/.test(text);
}

const isSpace = (c: string | undefined): boolean => c === undefined || c === " " || c === "\t" || c === "\n" || c === "\r";
const isWordChar = (c: string | undefined): boolean => c !== undefined && /[\p{L}\p{N}]/u.test(c);

/**
 * The end of the longest prefix of `text[0, limit)` that can be rendered on its
 * own: it ends after a single space before a non-space character, and leaves
 * no code span, emphasis, strikethrough, link text or HTML tag open.  0 if none.
 * (Delimiters are counted roughly as CommonMark does: a `*` between two spaces
 * or a `_` inside a word emphasises nothing.  A wrong guess only costs a
 * slightly different rendering until `finish()`, which re-renders the block.)
 */
export function safeRunEnd(text: string, limit: number): number {
  let ticks = 0;
  let stars = 0;
  let unders = 0;
  let tildes = 0;
  let brackets = 0;
  let tag = false;
  let destination = false;
  let best = 0;
  const end = Math.min(limit, text.length - 1);
  for (let i = 0; i < end; i += 1) {
    const c = text[i]!;
    const before = text[i - 1];
    const after = text[i + 1];
    if (c === "\\") {
      i += 1; // escapes the next character
    } else if (c === "`" || c === "*" || c === "~" || c === "_") {
      // A delimiter run counts once: `**` opens bold, ``` `` ``` a code span.
      let j = i + 1;
      while (text[j] === c) j += 1;
      const next = text[j];
      const flanking = !(isSpace(before) && isSpace(next));
      if (c === "`") ticks += 1;
      else if (c === "*" && flanking) stars += 1;
      else if (c === "~" && flanking) tildes += 1;
      else if (c === "_" && flanking && !(isWordChar(before) && isWordChar(next))) unders += 1;
      i = j - 1;
    } else if (c === "[") {
      brackets += 1;
    } else if (c === "]") {
      brackets = Math.max(0, brackets - 1);
    } else if (c === "(" && before === "]") {
      destination = true; // a link's (destination "title")
    } else if (c === ")") {
      destination = false;
    } else if (c === "<") {
      if (after !== undefined && /[A-Za-z/!?]/.test(after)) tag = true;
    } else if (c === ">") {
      tag = false;
    } else if (c === " " && !isSpace(after)) {
      const closed = ticks % 2 === 0 && stars % 2 === 0 && unders % 2 === 0 && tildes % 2 === 0;
      if (closed && brackets === 0 && !tag && !destination) best = i + 1;
    }
  }
  return best;
}

/** A long paragraph being streamed in runs. */
interface Paragraph {
  /** Where the open block starts in the whole text (it identifies the block). */
  start: number;
  /** Characters of the block already frozen into runs. */
  frozen: number;
  p: HTMLElement;
  tail: HTMLElement;
  /** Every frozen run was plain text (then they equal a whole-paragraph render). */
  exact: boolean;
}

export interface RendererOptions {
  scheduler: FrameScheduler;
  markdown: MarkdownToHtml;
  /** Inline Markdown to sanitized HTML (for runs of long paragraphs; default `markdown.inline`). */
  inline?: (markdown: string) => string;
  /** Called after each frame (tests, benchmarks). */
  onFrame?: (report: FrameReport) => void;
}

export class StreamRenderer {
  private readonly splitter = new BlockSplitter();
  private readonly doc: Document;
  private pending = "";
  private pendingTokens = 0;
  private tokens = 0;
  private handle: number | null = null;
  private frames = 0;
  private finished = false;
  /** The element of the open block (always the last child). */
  private openEl: HTMLElement;
  /** While the open block is a code block: its text node and where it starts. */
  private openCode: { start: number; node: Text; length: number } | null = null;
  private lastOpenText: string | null = null;
  private para: Paragraph | null = null;
  /** How far the open block was checked to be a plain paragraph (see stillPlain). */
  private plain: { start: number; checked: number; ok: boolean } | null = null;

  constructor(
    readonly el: HTMLElement,
    private readonly options: RendererOptions,
  ) {
    this.doc = el.ownerDocument;
    this.openEl = this.newBlockElement(true);
    el.appendChild(this.openEl);
  }

  /** The text received so far (including text not yet painted). */
  get text(): string {
    return this.splitter.value + this.pending;
  }

  /** Frames rendered so far. */
  get frameCount(): number {
    return this.frames;
  }

  /** Buffer one token's text; the DOM changes at the next frame, not now. */
  append(text: string): void {
    if (this.finished) return;
    this.pending += text;
    this.pendingTokens += 1;
    if (this.handle === null) this.handle = this.options.scheduler.request(() => this.frame());
  }

  /** Render what is buffered now (used before finishing; tests). */
  flush(): void {
    if (this.handle !== null) {
      this.options.scheduler.cancel(this.handle);
      this.handle = null;
    }
    if (this.pending.length > 0 || this.pendingTokens > 0) this.frame();
  }

  /**
   * The reply ended: flush, then render the open block once at full fidelity
   * (a still-open code block gets highlighted).  Further appends are ignored.
   */
  finish(): void {
    if (this.finished) return;
    this.flush();
    this.finished = true;
    const open = this.splitter.open();
    const text = this.splitter.value.slice(open.start);
    const para = this.para;
    const inline = this.inlineMarkdown();
    if (para !== null && inline !== null && para.start === open.start && para.exact && isPlainParagraph(text)) {
      para.tail.innerHTML = inline(text.slice(para.frozen)); // the runs already are the final render
    } else {
      this.openEl.innerHTML = text.trim() === "" ? "" : this.options.markdown(text);
    }
    this.openEl.classList.remove("streamchat-open");
    this.openCode = null;
    this.para = null;
  }

  /** Stop asking for frames (the view is going away). */
  dispose(): void {
    if (this.handle !== null) this.options.scheduler.cancel(this.handle);
    this.handle = null;
    this.finished = true;
  }

  private newBlockElement(open: boolean): HTMLElement {
    const div = this.doc.createElement("div");
    div.className = open ? "streamchat-block streamchat-open" : "streamchat-block";
    return div;
  }

  /** The one DOM update of a frame. */
  private frame(): void {
    this.handle = null;
    this.frames += 1;
    const newChars = this.pending.length;
    this.splitter.push(this.pending);
    this.pending = "";
    this.tokens += this.pendingTokens;
    this.pendingTokens = 0;
    let parsed = 0;
    let appended = 0;
    const completed = this.splitter.take();
    for (const block of completed) {
      const frozen = this.newBlockElement(false);
      frozen.innerHTML = this.options.markdown(block);
      parsed += block.length;
      this.el.insertBefore(frozen, this.openEl);
    }
    if (completed.length > 0) {
      // The open block now starts later: whatever it showed is stale.
      this.lastOpenText = null;
      this.openCode = null;
      this.para = null;
    }
    const open = this.splitter.open();
    if (open.kind === "code") appended = this.paintCode(open);
    else parsed += this.paintMarkdown(open);
    this.el.dataset.tokens = String(this.tokens);
    this.options.onFrame?.({
      frame: this.frames,
      parsedChars: parsed,
      appendedChars: appended,
      newChars,
      frozenBlocks: completed.length,
      totalChars: this.splitter.value.length,
      tokens: this.tokens,
    });
  }

  private inlineMarkdown(): ((markdown: string) => string) | null {
    return this.options.inline ?? this.options.markdown.inline ?? null;
  }

  /** Re-render the open Markdown block if it changed; returns chars parsed. */
  private paintMarkdown(open: Extract<OpenBlock, { kind: "markdown" }>): number {
    this.openCode = null;
    if (open.text === this.lastOpenText) return 0;
    const inline = this.inlineMarkdown();
    if (inline !== null && open.text.length > LONG_PARAGRAPH && this.stillPlain(open.start, open.text)) {
      this.lastOpenText = null;
      return this.paintParagraph(open.start, open.text, inline);
    }
    this.para = null; // (no longer a plain paragraph: render the block whole again)
    this.lastOpenText = open.text;
    this.openEl.innerHTML = open.text.trim() === "" ? "" : this.options.markdown(open.text);
    return open.text.length;
  }

  /**
   * Whether the open block is (still) one plain paragraph, checking only the
   * lines that are new since the last frame (from the start of the last line
   * checked, which may have been incomplete then).
   */
  private stillPlain(start: number, text: string): boolean {
    const known = this.plain;
    const from = known !== null && known.start === start ? known.checked : 0;
    const lineStart = from === 0 ? 0 : text.lastIndexOf("\n", from - 1) + 1;
    // One character back, so that a blank line split across two frames is seen.
    const ok = (from === 0 || known!.ok) && isPlainParagraph(text.slice(Math.max(0, lineStart - 1)));
    this.plain = { start, checked: text.length, ok };
    return ok;
  }

  /** The open block is a long plain paragraph: freeze a run if the tail is long, redraw the tail. */
  private paintParagraph(start: number, text: string, inline: (markdown: string) => string): number {
    let para = this.para;
    if (para === null || para.start !== start) {
      const p = this.doc.createElement("p");
      p.className = "streamchat-para";
      const tail = this.doc.createElement("span");
      p.append(tail);
      this.openEl.replaceChildren(p);
      para = this.para = { start, frozen: text.length - text.trimStart().length, p, tail, exact: true };
    }
    let parsed = 0;
    let rest = text.slice(para.frozen);
    if (rest.length > TAIL_MAX) {
      const end = safeRunEnd(rest, rest.length - TAIL_KEEP);
      if (end > 0) {
        const run = rest.slice(0, end);
        const span = this.doc.createElement("span");
        span.innerHTML = inline(run);
        para.p.insertBefore(span, para.tail);
        if (INLINE_SPECIAL.test(run)) para.exact = false;
        para.frozen += end;
        rest = rest.slice(end);
        parsed += run.length;
      }
    }
    para.tail.innerHTML = inline(rest);
    return parsed + rest.length;
  }

  /** Grow the open code block by its new characters; returns chars appended. */
  private paintCode(open: Extract<OpenBlock, { kind: "code" }>): number {
    this.lastOpenText = null;
    const current = this.openCode;
    if (current === null || current.start !== open.codeStart) {
      const lang = open.lang ? ` language-${escapeHtml(open.lang)}` : "";
      this.openEl.innerHTML = `<pre><code class="hljs${lang}"></code></pre>`;
      const code = this.openEl.querySelector("code")!;
      const node = this.doc.createTextNode(open.code);
      code.appendChild(node);
      this.openCode = { start: open.codeStart, node, length: open.code.length };
      return open.code.length;
    }
    const added = open.code.length - current.length;
    if (added > 0) {
      current.node.appendData(open.code.slice(current.length));
      current.length = open.code.length;
    }
    return Math.max(0, added);
  }
}

/** Render a whole message at once (history, replays finished): one parse. */
export function renderMarkdownInto(el: HTMLElement, text: string, markdown: MarkdownToHtml): void {
  el.innerHTML = text.trim() === "" ? "" : markdown(text);
}
