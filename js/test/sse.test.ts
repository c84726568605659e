import { test } from "node:test";
import assert from "node:assert/strict";
import { parseHeartbeatComment, SSELimitError, SSEParser, type SSEItem } from "../src/sse";

const enc = new TextEncoder();

/** Parse `input` fed as the given byte pieces; end of body included. */
function parse(pieces: Array<Uint8Array | string>): SSEItem[] {
  const p = new SSEParser();
  const out: SSEItem[] = [];
  for (const piece of pieces) out.push(...p.feed(piece));
  out.push(...p.end());
  return out;
}

function ev(data: string, event = "message", id = ""): SSEItem {
  return { kind: "event", event, data, id };
}

// [name, stream, expected items] — the table from the WHATWG spec's rules.
const TABLE: Array<[string, string, SSEItem[]]> = [
  ["LF", "data: a\n\n", [ev("a")]],
  ["CRLF", "data: a\r\n\r\n", [ev("a")]],
  ["CR", "data: a\r\r", [ev("a")]],
  ["mixed line ends", "data: a\rdata: b\r\ndata: c\n\n", [ev("a\nb\nc")]],
  ["no space after colon", "data:a\n\n", [ev("a")]],
  ["only one space stripped", "data:  a\n\n", [ev(" a")]],
  ["event name", "event: token\ndata: x\n\n", [ev("x", "token")]],
  ["event name resets", "event: token\ndata: x\n\ndata: y\n\n", [ev("x", "token"), ev("y")]],
  ["id persists", "id: 3\ndata: x\n\ndata: y\n\n", [ev("x", "message", "3"), ev("y", "message", "3")]],
  ["id with NUL ignored", "id: 1\ndata: x\n\nid: a\0b\ndata: y\n\n", [ev("x", "message", "1"), ev("y", "message", "1")]],
  ["empty id resets", "id: 1\ndata: x\n\nid\ndata: y\n\n", [ev("x", "message", "1"), ev("y", "message", "")]],
  ["no data, no event", "event: x\n\n", []],
  ["field without colon", "data\n\n", [ev("")]],
  ["empty data lines", "data\ndata\n\n", [ev("\n")]],
  ["comment", ": hb 12.5\n", [{ kind: "comment", text: " hb 12.5" }]],
  ["comment between fields", "data: a\n:c\ndata: b\n\n", [{ kind: "comment", text: "c" }, ev("a\nb")]],
  ["retry valid", "retry: 1500\n", [{ kind: "retry", ms: 1500 }]],
  ["retry invalid", "retry: 15x\nretry: -1\n", []],
  ["unknown field", "foo: bar\ndata: x\n\n", [ev("x")]],
  ["incomplete event discarded at end", "data: a\n\ndata: b\n", [ev("a")]],
  ["incomplete line discarded at end", "data: a", []],
  ["BOM stripped once", "\uFEFFdata: a\n\n\uFEFFdata: b\n\n", [ev("a")]],
  ["U+2028 is not a line end", "data: a\u2028b\n\n", [ev("a\u2028b")]],
  ["NEL is not a line end", "data: a\u0085b\n\n", [ev("a\u0085b")]],
  ["unicode", "data: héllo → 世界 😀\n\n", [ev("héllo → 世界 😀")]],
  ["bridge event", 'id: 3\nevent: token\ndata: {"type":"token","seq":3}\n\n', [ev('{"type":"token","seq":3}', "token", "3")]],
];

test("spec table, whole", () => {
  for (const [name, stream, expected] of TABLE) assert.deepEqual(parse([enc.encode(stream)]), expected, name);
});

test("spec table, one byte at a time", () => {
  for (const [name, stream, expected] of TABLE) {
    const bytes = enc.encode(stream);
    const pieces = Array.from(bytes, (b) => Uint8Array.of(b));
    assert.deepEqual(parse(pieces), expected, name);
  }
});

/** A deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomSplit(bytes: Uint8Array, random: () => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < bytes.length) {
    const n = 1 + Math.floor(random() * 12);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

test("random chunk splits give identical output (incl. CR at chunk end, split UTF-8)", () => {
  const random = rng(20240601);
  const endings = ["\n", "\r", "\r\n"];
  for (let round = 0; round < 200; round += 1) {
    let stream = round % 3 === 0 ? "\uFEFF" : "";
    const n = 1 + Math.floor(random() * 8);
    for (let i = 0; i < n; i += 1) {
      const nl = endings[Math.floor(random() * 3)]!;
      const text = ["tok", "é😀", "a:b", " sp", ""][Math.floor(random() * 5)]!;
      if (random() < 0.3) stream += `: hb ${i}${nl}`;
      stream += `id: ${i}${nl}event: token${nl}data: ${text}${nl}data: ${i}${nl}${nl}`;
    }
    const bytes = enc.encode(stream);
    const whole = parse([bytes]);
    assert.equal(whole.filter((x) => x.kind === "event").length, n);
    for (let k = 0; k < 5; k += 1) assert.deepEqual(parse(randomSplit(bytes, random)), whole, `round ${round}`);
  }
});

test("strings can be fed too", () => {
  assert.deepEqual(parse(["data: a\r", "\ndata: b\n", "\n"]), [ev("a\nb")]);
});

test("CR at the end of a chunk followed by a chunk starting with LF is one line end", () => {
  const p = new SSEParser();
  assert.deepEqual(p.feed(enc.encode("data: a\r")), []);
  assert.deepEqual(p.feed(enc.encode("\n")), []);
  assert.deepEqual(p.feed(enc.encode("\r")), [ev("a")]);
  assert.deepEqual(p.feed(enc.encode("\n")), []);
  assert.deepEqual(p.feed(enc.encode("data: b\n\n")), [ev("b")]);
});

test("items come out as soon as their line is complete", () => {
  const p = new SSEParser();
  assert.deepEqual(p.feed("data: a\n"), []);
  assert.deepEqual(p.feed("\n"), [ev("a")]);
  assert.equal(p.lastEventId, "");
  p.feed("id: 9\nretry: 20\n");
  assert.equal(p.lastEventId, "9");
  assert.equal(p.retry, 20);
});

test("line limit: names limit and size, also for a line that never ends", () => {
  const p = new SSEParser({ maxLineLength: 10 });
  assert.deepEqual(p.feed("data: 1234\n"), []);
  assert.throws(
    () => p.feed("data: 12345678"),
    (e: unknown) => e instanceof SSELimitError && e.message === "SSE line of 14 characters exceeds the limit of 10 characters (maxLineLength)",
  );
  const q = new SSEParser({ maxLineLength: 10 });
  q.feed("data: ");
  q.feed("1234");
  assert.throws(() => q.feed("5"), /line of 11 characters exceeds the limit of 10/);
});

test("event size limit counts the joined data", () => {
  const p = new SSEParser({ maxEventSize: 5 });
  p.feed("data: ab\ndata: cd\n");
  assert.throws(
    () => p.feed("data: e\n"),
    (e: unknown) => e instanceof SSELimitError && e.limit === "maxEventSize" && e.size === 7 && e.max === 5,
  );
  const q = new SSEParser({ maxEventSize: 5 });
  assert.deepEqual(q.feed("data: ab\n\ndata: cde\n\n"), [ev("ab"), ev("cde")]);
});

test("heartbeat comments", () => {
  assert.equal(parseHeartbeatComment(" hb 1795448266123.4"), 1795448266123.4);
  assert.equal(parseHeartbeatComment("hb 12"), 12);
  assert.equal(parseHeartbeatComment(" hb"), null);
  assert.equal(parseHeartbeatComment(" hello"), null);
  assert.equal(parseHeartbeatComment(" hb x"), null);
});
