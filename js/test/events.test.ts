import { test } from "node:test";
import assert from "node:assert/strict";
import { ERROR_CODES, EventFormatError, isTerminal, parseEvent, parseEventJson } from "../src/events";

test("parses every event type of the protocol table", () => {
  const cases: Array<[unknown, unknown]> = [
    [
      { type: "start", seq: 0, recv_ms: 1.5, emit_ms: 1, model: "m", backend: "b", protocol: "openai", send_ms: 2, stream_id: "abcdefgh" },
      { type: "start", seq: 0, recv_ms: 1.5, emit_ms: 1, model: "m", backend: "b", protocol: "openai", send_ms: 2, stream_id: "abcdefgh" },
    ],
    [{ type: "token", seq: 1, recv_ms: 2, text: "Hi", chunks: 3 }, { type: "token", seq: 1, recv_ms: 2, text: "Hi", chunks: 3 }],
    [{ type: "token", seq: 1, recv_ms: 2, text: "" }, { type: "token", seq: 1, recv_ms: 2, text: "", chunks: 1 }],
    [
      { type: "usage", seq: 2, recv_ms: 3, prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 },
      { type: "usage", seq: 2, recv_ms: 3, prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 },
    ],
    [{ type: "done", seq: 3, recv_ms: 4, finish_reason: "stop" }, { type: "done", seq: 3, recv_ms: 4, finish_reason: "stop" }],
    [
      { type: "error", seq: 0, recv_ms: 4, code: "http_status", message: "502", status: 502, retry_after: 1.5 },
      { type: "error", seq: 0, recv_ms: 4, code: "http_status", message: "502", status: 502, retry_after: 1.5, retryable: false, partial: false },
    ],
    [{ type: "heartbeat", seq: 7, recv_ms: 9 }, { type: "heartbeat", seq: 7, recv_ms: 9 }],
  ];
  for (const [input, expected] of cases) assert.deepEqual(parseEvent(input), expected);
});

test("null fields are treated as absent, like the Python side leaves them out", () => {
  assert.deepEqual(parseEvent({ type: "done", seq: 1, recv_ms: 1, finish_reason: null, emit_ms: null }), {
    type: "done",
    seq: 1,
    recv_ms: 1,
  });
});

test("accepts every error code of events.py", () => {
  for (const code of ERROR_CODES) {
    const e = parseEvent({ type: "error", seq: 0, recv_ms: 0, code, message: "m", retryable: true, partial: true });
    assert.equal(e.type === "error" && e.code, code);
  }
  assert.equal(ERROR_CODES.length, 9);
});

test("rejects with messages that name the culprit", () => {
  const bad: Array<[unknown, RegExp]> = [
    [[], /must be a JSON object, got array/],
    [null, /got null/],
    [{ type: "tokn", seq: 0, recv_ms: 0 }, /unknown event type "tokn"; expected one of start, token/],
    [{ seq: 0, recv_ms: 0 }, /unknown event type undefined/],
    [{ type: "error", seq: 0, recv_ms: 0, code: "oops", message: "x" }, /unknown code "oops"/],
    [{ type: "token", seq: 0, recv_ms: 0 }, /token event lacks field "text"/],
    [{ type: "token", seq: -1, recv_ms: 0, text: "" }, /"seq" must be an integer >= 0, got number -1/],
    [{ type: "token", seq: 1.5, recv_ms: 0, text: "" }, /"seq" must be an integer >= 0/],
    [{ type: "token", seq: 0, recv_ms: "0", text: "" }, /"recv_ms" must be a finite number, got string/],
    [{ type: "token", seq: 0, recv_ms: 0, text: "", chunks: 0 }, /"chunks" must be an integer >= 1/],
    [{ type: "token", seq: 0, recv_ms: 0, text: "", extra: 1, more: 2 }, /token event has unknown fields extra, more/],
    [{ type: "done", seq: 0, recv_ms: 0, stream_id: "abcdefgh" }, /unknown fields stream_id/],
    [{ type: "error", seq: 0, recv_ms: 0, code: "internal", message: "m", retryable: "yes" }, /"retryable" must be a boolean/],
  ];
  for (const [input, pattern] of bad) {
    assert.throws(() => parseEvent(input), (exc: unknown) => exc instanceof EventFormatError && pattern.test(exc.message), JSON.stringify(input));
  }
});

test("parseEventJson reports JSON errors as EventFormatError", () => {
  assert.throws(() => parseEventJson("{nope"), /event is not JSON/);
  assert.deepEqual(parseEventJson('{"type":"heartbeat","seq":0,"recv_ms":1}'), { type: "heartbeat", seq: 0, recv_ms: 1 });
});

test("isTerminal: done and error only", () => {
  const of = (type: string, extra: object = {}) => parseEvent({ type, seq: 0, recv_ms: 0, ...extra });
  assert.equal(isTerminal(of("done")), true);
  assert.equal(isTerminal(of("error", { code: "timeout", message: "t" })), true);
  assert.equal(isTerminal(of("start")), false);
  assert.equal(isTerminal(of("token", { text: "x" })), false);
  assert.equal(isTerminal(of("usage")), false);
  assert.equal(isTerminal(of("heartbeat")), false);
});
