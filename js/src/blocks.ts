/**
 * An incremental splitter of streaming Markdown into top-level blocks.
 *
 * Why: re-rendering a whole message on every frame costs O(message) per frame,
 * O(n²) per reply.  Instead, blocks that can no longer change are *frozen*
 * (rendered once, never touched again) and only the last, open block is
 * re-rendered.  A block is complete when
 *  - a blank line is followed by a line that starts in column 0 (an indented
 *    line may still continue a list item or an indented code block), or
 *  - a top-level fenced code block (fence in column 0) closes, or
 *  - a top-level fence opens (it interrupts a paragraph; what came before is done).
 * Blank lines inside an open fence split nothing.  Complete lines are scanned,
 * each once (plus a peek at the first character of the line in progress), so
 * the splitter's own cost is O(new text) per call.
 *
 * The split can differ from a whole-document parse in rare cases (a loose
 * list becomes two lists; a reference link defined in a later block); the final
 * render of each block is still full-fidelity Markdown.
 */

/** The open fence being tracked. */
interface Fence {
  char: "`" | "~";
  length: number;
  /** Fence line in column 0: the block it starts is split off on its own. */
  topLevel: boolean;
  /** Language: first word of the info string ("" if none). */
  lang: string;
  /** Offset of the first character after the opening fence line. */
  codeStart: number;
}

/** The last, still open block. */
export type OpenBlock =
  | { kind: "markdown"; start: number; text: string }
  /** A top-level fenced code block whose closing fence has not arrived. */
  | { kind: "code"; start: number; lang: string; codeStart: number; code: string };

const FENCE_OPEN = /^( {0,3})(`{3,}|~{3,})([^\n]*)$/;

/** Parse an opening fence line (without its line end), or null. */
export function openingFence(line: string): { indent: number; char: "`" | "~"; length: number; info: string } | null {
  const m = FENCE_OPEN.exec(line);
  if (m === null) return null;
  const marker = m[2]!;
  const info = m[3]!.trim();
  const char = marker[0] as "`" | "~";
  if (char === "`" && info.includes("`")) return null; // CommonMark: not a fence
  return { indent: m[1]!.length, char, length: marker.length, info };
}

/** Whether `line` closes `fence` (same char, at least as long, nothing after). */
export function closesFence(line: string, fence: Pick<Fence, "char" | "length">): boolean {
  const m = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(line);
  return m !== null && m[1]![0] === fence.char && m[1]!.length >= fence.length;
}

function isBlank(line: string): boolean {
  return /^[ \t]*$/.test(line);
}

export class BlockSplitter {
  private text = "";
  /** Start of the first line not scanned yet. */
  private scanPos = 0;
  /** End of the last completed block: the open block starts here. */
  private frozenEnd = 0;
  private fence: Fence | null = null;
  /** The open block has non-blank content. */
  private hasContent = false;
  /** A blank line followed that content. */
  private afterBlank = false;
  private completed: string[] = [];

  /** The whole text so far. */
  get value(): string {
    return this.text;
  }

  /** Add streamed text (only buffered: scanning happens in {@link take}). */
  push(chunk: string): void {
    this.text += chunk;
  }

  /** Scan the new complete lines; return the blocks they completed, in order. */
  take(): string[] {
    let nl: number;
    while ((nl = this.text.indexOf("\n", this.scanPos)) >= 0) {
      const lineStart = this.scanPos;
      const lineEnd = nl + 1;
      const raw = this.text.slice(lineStart, nl);
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      this.scanPos = lineEnd;
      this.scanLine(line, lineStart, lineEnd);
    }
    // A blank line then a character in column 0: the open block ended, even
    // though the new line is not complete (whatever it becomes starts a block).
    if (this.afterBlank && this.fence === null && this.scanPos < this.text.length) {
      if (!/[ \t\r\n]/.test(this.text[this.scanPos]!)) this.freezeAt(this.scanPos);
    }
    const out = this.completed;
    this.completed = [];
    return out;
  }

  /** The open block (call after {@link take}). */
  open(): OpenBlock {
    const fence = this.fence;
    if (fence !== null && fence.topLevel) {
      return {
        kind: "code",
        start: this.frozenEnd,
        lang: fence.lang,
        codeStart: fence.codeStart,
        code: this.text.slice(fence.codeStart),
      };
    }
    return { kind: "markdown", start: this.frozenEnd, text: this.text.slice(this.frozenEnd) };
  }

  private freezeAt(end: number): void {
    if (end <= this.frozenEnd) return;
    const block = this.text.slice(this.frozenEnd, end);
    this.frozenEnd = end;
    if (!isBlank(block.replace(/\n/g, ""))) this.completed.push(block);
  }

  private scanLine(line: string, lineStart: number, lineEnd: number): void {
    const fence = this.fence;
    if (fence !== null) {
      if (closesFence(line, fence)) {
        this.fence = null;
        if (fence.topLevel) {
          this.freezeAt(lineEnd);
          this.hasContent = false;
          this.afterBlank = false;
        }
      }
      return;
    }
    const open = openingFence(line);
    if (open !== null) {
      const topLevel = open.indent === 0;
      if (topLevel) this.freezeAt(lineStart);
      this.fence = {
        char: open.char,
        length: open.length,
        topLevel,
        lang: open.info.split(/\s+/)[0] ?? "",
        codeStart: lineEnd,
      };
      this.hasContent = true;
      this.afterBlank = false;
      return;
    }
    if (isBlank(line)) {
      if (this.hasContent) this.afterBlank = true;
      return;
    }
    if (this.afterBlank && !/^[ \t]/.test(line)) this.freezeAt(lineStart);
    this.hasContent = true;
    this.afterBlank = false;
  }
}

/** Split a whole text the way streaming would: completed blocks + open block. */
export function splitBlocks(text: string): { blocks: string[]; open: OpenBlock } {
  const splitter = new BlockSplitter();
  splitter.push(text);
  const blocks = splitter.take();
  return { blocks, open: splitter.open() };
}
