/**
 * The kernel path: the same chat stream over the widget's comm, for pages with
 * no bridge (VS Code, Colab, a server without the extension).
 *
 * JS → Python custom messages:
 *   `{"type":"kernel_chat","id","backend","messages","model","options"}`
 *   `{"type":"kernel_cancel","id"}`
 *   `{"type":"clock_ping","id"}`            (optional clock alignment)
 * Python → JS:
 *   `{"type":"kernel_events","id","events":[event JSON, ...]}`
 *   `{"type":"clock_pong","id","now_ms"}`   (answer to clock_ping)
 *
 * Events are validated and de-duplicated exactly like bridge events; each
 * batch gets one browser receive time.  A stream ends with exactly one terminal
 * event, made here on cancel or on a protocol violation.
 */

import type { ChatRequest, ReceiveInfo, StreamCounters } from "./client";
import { newCounters, newStreamId } from "./client";
import { browserNowMs } from "./clock";
import {
  EventFormatError,
  isTerminal,
  localError,
  parseEvent,
  type ErrorCode,
  type ErrorEvent,
  type StreamEvent,
  type TerminalEvent,
} from "./events";
import { asRecord } from "./model";

export interface KernelStreamOptions {
  request: ChatRequest;
  onEvent: (event: StreamEvent, info: ReceiveInfo) => void;
  clockOffsetMs?: number;
}

export interface KernelStream {
  readonly id: string;
  readonly counters: Readonly<StreamCounters>;
  readonly done: Promise<TerminalEvent>;
  cancel(): void;
}

type Send = (content: Record<string, unknown>) => void;

interface Active {
  receive(events: unknown[]): void;
}

export class KernelChannel {
  private readonly streams = new Map<string, Active>();
  private readonly pings = new Map<string, (nowMs: number) => void>();

  constructor(
    private readonly send: Send,
    private readonly now: () => number = browserNowMs,
  ) {}

  /** Route one custom message from Python; true if it was ours. */
  handle(message: unknown): boolean {
    const msg = asRecord(message);
    if (msg === null) return false;
    if (msg.type === "kernel_events" && typeof msg.id === "string") {
      const events = Array.isArray(msg.events) ? msg.events : [];
      this.streams.get(msg.id)?.receive(events);
      return true;
    }
    if (msg.type === "clock_pong" && typeof msg.id === "string" && typeof msg.now_ms === "number") {
      this.pings.get(msg.id)?.(msg.now_ms);
      return true;
    }
    return false;
  }

  /** One clock sample from the kernel: its `now_ms`, or a timeout error. */
  ping(timeoutMs = 1000): Promise<number> {
    const id = newStreamId().slice(0, 12);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new Error(`kernel did not answer clock_ping within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pings.set(id, (nowMs) => {
        clearTimeout(timer);
        this.pings.delete(id);
        resolve(nowMs);
      });
      this.send({ type: "clock_ping", id });
    });
  }

  /** Start one chat stream in the kernel. */
  open(options: KernelStreamOptions): KernelStream {
    const id = newStreamId().slice(0, 16);
    const offset = options.clockOffsetMs ?? 0;
    const counters = newCounters();
    let lastSeq = -1;
    let terminal: TerminalEvent | null = null;
    let resolveDone!: (event: TerminalEvent) => void;
    const done = new Promise<TerminalEvent>((resolve) => (resolveDone = resolve));

    const end = (event: TerminalEvent): void => {
      terminal = event;
      this.streams.delete(id);
      resolveDone(event);
    };
    const fail = (code: ErrorCode, message: string): void => {
      if (terminal !== null) return;
      const now = this.now() + offset;
      const event = localError(code, message, lastSeq, now, counters.arrivals > 0);
      options.onEvent(event, { browserMs: now, synthetic: true });
      end(event);
    };

    this.streams.set(id, {
      receive: (events) => {
        if (terminal !== null) return;
        const browserMs = this.now() + offset;
        let carried = false;
        for (const raw of events) {
          let event: StreamEvent;
          try {
            event = parseEvent(raw);
          } catch (exc) {
            const why = exc instanceof EventFormatError ? exc.message : String(exc);
            this.send({ type: "kernel_cancel", id });
            fail("protocol_error", `the kernel broke the protocol: ${why}`);
            return;
          }
          if (event.type === "heartbeat") {
            counters.heartbeats += 1;
            options.onEvent(event, { browserMs, synthetic: false });
            continue;
          }
          carried = true;
          if (event.seq <= lastSeq && !isTerminal(event)) {
            counters.duplicates += 1;
            continue;
          }
          lastSeq = Math.max(lastSeq, event.seq);
          counters.events += 1;
          if (event.type === "token") {
            counters.arrivals += 1;
            counters.chunks += event.chunks;
          }
          options.onEvent(event, { browserMs, synthetic: false });
          if (isTerminal(event)) {
            counters.reads += 1;
            end(event);
            return;
          }
        }
        if (carried) counters.reads += 1;
      },
    });
    const { backend, messages, model, options: requestOptions } = options.request;
    this.send({ type: "kernel_chat", id, backend, messages, model: model ?? "", options: requestOptions ?? {} });

    return {
      id,
      counters,
      done,
      cancel: () => {
        if (terminal !== null) return;
        this.send({ type: "kernel_cancel", id });
        fail("cancelled", "cancelled by the reader");
      },
    };
  }

  /** Forget every stream (the widget is going away); their `done` stay pending. */
  dispose(): void {
    for (const id of this.streams.keys()) this.send({ type: "kernel_cancel", id });
    this.streams.clear();
    this.pings.clear();
  }
}
