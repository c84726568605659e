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

export interface RendererOptions {
  scheduler: FrameScheduler;
  markdown: MarkdownToHtml;
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
    const text = this.splitter.value.slice(this.splitter.open().start);
    this.openEl.innerHTML = text.trim() === "" ? "" : this.options.markdown(text);
    this.openEl.classList.remove("streamchat-open");
    this.openCode = null;
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

  /** Re-render the open Markdown block if it changed; returns chars parsed. */
  private paintMarkdown(open: Extract<OpenBlock, { kind: "markdown" }>): number {
    this.openCode = null;
    if (open.text === this.lastOpenText) return 0;
    this.lastOpenText = open.text;
    this.openEl.innerHTML = open.text.trim() === "" ? "" : this.options.markdown(open.text);
    return open.text.length;
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
