import { test } from "node:test";
import assert from "node:assert/strict";
import { BlockSplitter, closesFence, openingFence, splitBlocks } from "../src/blocks";

test("paragraphs split at a blank line once the next block has begun", () => {
  assert.deepEqual(splitBlocks("a\nb\n\nc"), { blocks: ["a\nb\n\n"], open: { kind: "markdown", start: 5, text: "c" } });
  // Nothing after the blank line yet, or only an indent: still open.
  assert.deepEqual(splitBlocks("a\n\n").blocks, []);
  assert.deepEqual(splitBlocks("a\n\n  ").blocks, []);
  assert.deepEqual(splitBlocks("a\n\nb\n\nc\n").blocks, ["a\n\n", "b\n\n"]);
});

test("an indented line after a blank line continues the block (lists, indented code)", () => {
  assert.deepEqual(splitBlocks("- a\n\n  more of a\n- b\n").blocks, []);
  assert.deepEqual(splitBlocks("text\n\n    code\n").blocks, []);
});

test("a top-level fence interrupts a paragraph and is its own block when closed", () => {
  const { blocks, open } = splitBlocks("intro\n```py\nx = 1\n\ny = 2\n```\nafter\n");
  assert.deepEqual(blocks, ["intro\n", "```py\nx = 1\n\ny = 2\n```\n"]);
  assert.deepEqual(open, { kind: "markdown", start: 29, text: "after\n" });
});

test("blank lines inside an open fence do not split; the open block is code", () => {
  const { blocks, open } = splitBlocks("para\n\n```python\ndef f():\n\n    return 1\n\nprint(f())");
  assert.deepEqual(blocks, ["para\n\n"]);
  assert.equal(open.kind, "code");
  if (open.kind !== "code") return;
  assert.equal(open.lang, "python");
  assert.equal(open.code, "def f():\n\n    return 1\n\nprint(f())");
});

test("fence rules: tildes, longer closers, backticks in info, indented fences", () => {
  assert.deepEqual(openingFence("~~~~ js extra"), { indent: 0, char: "~", length: 4, info: "js extra" });
  assert.equal(openingFence("``` a`b"), null);
  assert.equal(openingFence("    ```"), null);
  assert.equal(openingFence("``"), null);
  assert.equal(closesFence("`````", { char: "`", length: 3 }), true);
  assert.equal(closesFence("``", { char: "`", length: 3 }), false);
  assert.equal(closesFence("~~~", { char: "`", length: 3 }), false);
  assert.equal(closesFence("``` x", { char: "`", length: 3 }), false);
  // A closer of the other kind does not end the block:
  assert.deepEqual(splitBlocks("~~~\n```\n\nx\n~~~\nnext\n").blocks, ["~~~\n```\n\nx\n~~~\n"]);
  // An indented fence (in a list item) is tracked but not split off:
  const nested = splitBlocks("1. item\n   ```\n   a\n\n   b\n   ```\n");
  assert.deepEqual(nested.blocks, []);
  assert.equal(nested.open.kind, "markdown");
});

test("CRLF text splits like LF text", () => {
  assert.deepEqual(splitBlocks("a\r\n\r\nb\r\n").blocks, ["a\r\n\r\n"]);
  assert.equal(splitBlocks("```\r\nx\r\n```\r\n").blocks.length, 1);
});

test("streamed in any pieces, the blocks are the same as all at once", () => {
  const text =
    "# Title\n\nSome *text* here.\nMore.\n\n```js\nconst a = 1;\n\nconst b = 2;\n```\nAfter code.\n\n- one\n- two\n\n~~~\nraw\n~~~\n\nEnd";
  const whole = splitBlocks(text);
  for (const step of [1, 2, 3, 7, 13]) {
    const s = new BlockSplitter();
    const blocks: string[] = [];
    for (let i = 0; i < text.length; i += step) {
      s.push(text.slice(i, i + step));
      blocks.push(...s.take());
    }
    assert.deepEqual(blocks, whole.blocks, `step ${step}`);
    assert.deepEqual(s.open(), whole.open, `step ${step}`);
    assert.equal(blocks.join("") + (s.open().kind === "markdown" ? (s.open() as { text: string }).text : ""), text);
  }
});
