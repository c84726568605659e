import { test } from "node:test";
import assert from "node:assert/strict";
import { alignClock, measureClock, measureClockWith, toServerTime } from "../src/clock";

test("offset from the min-RTT sample, error = RTT/2", () => {
  const a = alignClock([
    { t0: 0, t1: 10, server: 1005 }, // rtt 10
    { t0: 100, t1: 102, server: 1102 }, // rtt 2: best; midpoint 101 -> offset 1001
    { t0: 200, t1: 230, server: 1300 },
  ]);
  assert.deepEqual(a, { offsetMs: 1001, errorMs: 1, rttMs: 2, samples: 3 });
  assert.equal(toServerTime(50, a), 1051);
});

test("a server behind the browser gives a negative offset", () => {
  const a = alignClock([{ t0: 5000, t1: 5004, server: 1000 }]);
  assert.equal(a.offsetMs, -4002);
  assert.equal(a.errorMs, 2);
});

test("true offset lies within the bound for any asymmetric delay", () => {
  const trueOffset = 123.25;
  for (const [up, down] of [[0, 8], [8, 0], [3, 5], [4, 4]] as const) {
    const t0 = 1000;
    const server = t0 + up + trueOffset;
    const a = alignClock([{ t0, t1: t0 + up + down, server }]);
    assert.ok(Math.abs(a.offsetMs - trueOffset) <= a.errorMs + 1e-9, `${up}/${down}`);
  }
});

test("negative round trips are skipped; none usable throws", () => {
  assert.equal(alignClock([{ t0: 10, t1: 5, server: 0 }, { t0: 0, t1: 4, server: 102 }]).offsetMs, 100);
  assert.throws(() => alignClock([]), /at least one usable sample, got 0/);
  assert.throws(() => alignClock([{ t0: 10, t1: 5, server: 0 }]), /got 1/);
});

test("measureClock takes N samples against a fake endpoint and skips failures", async () => {
  let clock = 0;
  let calls = 0;
  const rtts = [9, 3, -1, 5, 7]; // -1: this call fails
  const fakeFetch = async (url: string): Promise<Response> => {
    assert.equal(url, "/base/streamchat/api/clock");
    const rtt = rtts[calls++]!;
    if (rtt < 0) throw new TypeError("network");
    clock += rtt / 2;
    const now = clock + 500; // server is 500 ms ahead
    clock += rtt / 2;
    return new Response(JSON.stringify({ now_ms: now }), { headers: { "Content-Type": "application/json" } });
  };
  const a = await measureClock({ url: "/base/streamchat/api/clock", fetch: fakeFetch, now: () => clock });
  assert.equal(calls, 5);
  assert.equal(a.samples, 4);
  assert.equal(a.rttMs, 3);
  assert.equal(a.offsetMs, 500);
  assert.equal(a.errorMs, 1.5);
});

test("measureClock fails when every sample fails", async () => {
  const fakeFetch = async (): Promise<Response> => new Response("nope", { status: 500 });
  await assert.rejects(measureClock({ url: "/c", fetch: fakeFetch, samples: 2 }), /not valid JSON|Unexpected token/);
});

test("measureClockWith works over any ask() channel", async () => {
  let t = 0;
  const a = await measureClockWith(async () => {
    t += 2; // a 2 ms round trip, stamped half-way
    return t - 1 + 40;
  }, 3, () => t);
  assert.equal(a.samples, 3);
  assert.equal(a.offsetMs, 40);
  await assert.rejects(measureClockWith(async () => Promise.reject(new Error("timeout")), 3), /timeout/);
});
