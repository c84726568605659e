/** Fake fetch bodies and WebSockets for driving the stream client. */
import type { WebSocketLike } from "../../src/client";

const enc = new TextEncoder();

/** A response body the test pushes bytes into, then closes or breaks. */
export class Body {
  readonly stream: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  cancelled = false;

  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.controller = c;
      },
      cancel: () => {
        this.cancelled = true;
      },
    });
  }

  push(text: string): void {
    this.controller.enqueue(enc.encode(text));
  }

  close(): void {
    this.controller.close();
  }

  /** The connection breaks (a network error while reading). */
  fail(): void {
    this.controller.error(new TypeError("network error"));
  }
}

/** One event as the bridge writes it on the SSE leg. */
export function sse(event: Record<string, unknown>): string {
  return `id: ${String(event.seq)}\nevent: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`;
}

export function sseResponse(body: Body, headers: Record<string, string> = {}): Response {
  return new Response(body.stream, {
    status: 200,
    headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache", ...headers },
  });
}

export function jsonResponse(status: number, data: unknown): Response {
  return new Response(JSON.stringify(data), { status, headers: { "Content-Type": "application/json" } });
}

export interface Call {
  url: string;
  init: RequestInit;
  headers: Record<string, string>;
  body: unknown;
}

/** A fetch that hands each call to the test's handler and records it. */
export function fakeFetch(handler: (call: Call, index: number) => Response | Promise<Response>): {
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  calls: Call[];
} {
  const calls: Call[] = [];
  return {
    calls,
    fetch: async (url, init = {}) => {
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((v, k) => (headers[k] = v));
      const call: Call = { url, init, headers, body: typeof init.body === "string" ? JSON.parse(init.body) : undefined };
      calls.push(call);
      const signal = init.signal;
      if (signal?.aborted) throw new DOMException("aborted", "AbortError");
      const response = await handler(call, calls.length - 1);
      if (signal && response.body) {
        // Like a real fetch: aborting breaks the body being read.
        const reader = response.body.getReader();
        const stream = new ReadableStream<Uint8Array>({
          pull: async (c) => {
            try {
              const { done, value } = await reader.read();
              if (done) c.close();
              else c.enqueue(value);
            } catch (exc) {
              c.error(exc);
            }
          },
          cancel: (reason) => reader.cancel(reason),
        });
        signal.addEventListener("abort", () => {
          void reader.cancel();
        });
        return new Response(signal.aborted ? null : stream, { status: response.status, headers: response.headers });
      }
      return response;
    },
  };
}

/** A WebSocket driven by the test. */
export class FakeSocket implements WebSocketLike {
  static instances: FakeSocket[] = [];
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: unknown[] = [];
  closedWith: number | null = null;

  constructor(readonly url: string) {
    FakeSocket.instances.push(this);
  }

  static reset(): void {
    FakeSocket.instances = [];
  }

  static last(): FakeSocket {
    return FakeSocket.instances[FakeSocket.instances.length - 1]!;
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(code = 1000): void {
    this.closedWith = code;
    this.readyState = 3;
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  receive(data: unknown): void {
    this.onmessage?.({ data: typeof data === "string" ? data : JSON.stringify(data) });
  }

  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
}

/** Let pending promise callbacks run. */
export async function settle(times = 10): Promise<void> {
  for (let i = 0; i < times; i += 1) await new Promise<void>((r) => setImmediate(r));
}
