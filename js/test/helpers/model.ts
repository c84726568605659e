/** A fake anywidget model: Backbone-like synchronous change events. */
import { applyTail, type ChatState, type HistoryTail, type Message, type Model } from "../../src/model";

type Listener = (...args: never[]) => void;

export class FakeModel implements Model<ChatState> {
  state: ChatState & { layout: object };
  listeners = new Map<string, Set<Listener>>();
  /** Every custom message the widget sent to Python. */
  sent: Array<Record<string, unknown>> = [];
  /** The state diff of every save_changes() call. */
  saves: Array<Partial<ChatState>> = [];
  private dirty: Partial<ChatState> = {};
  /** Python's history, as rebuilt from the tails sent. */
  python: Message[];

  constructor(initial: Partial<ChatState> = {}) {
    this.state = {
      backend: "",
      model: "",
      leg: "sse",
      path: "auto",
      active_path: "",
      history: [],
      system_prompt: "",
      options: {},
      busy: false,
      backends: [],
      title: "",
      layout: {},
      ...initial,
    };
    this.python = [...(initial.history ?? [])];
  }

  get<K extends keyof ChatState>(name: K): ChatState[K] {
    return this.state[name];
  }

  set<K extends keyof ChatState>(name: K, value: ChatState[K]): void {
    (this.state as ChatState)[name] = value;
    (this.dirty as Record<string, unknown>)[name] = value;
    this.trigger(`change:${name}`);
  }

  save_changes(): void {
    this.saves.push(this.dirty);
    this.dirty = {};
  }

  send(content: unknown): void {
    const msg = content as Record<string, unknown>;
    this.sent.push(msg);
    // Traitlet writes reach Python as `state` messages (see pushState): record them like
    // saves, with history rebuilt from its tail as Python does.
    if (msg.type === "state") {
      const save: Partial<ChatState> = { ...(msg.state as Partial<ChatState>) };
      const tail = msg.history as HistoryTail | undefined;
      if (tail !== undefined) {
        const next = applyTail(this.python, tail);
        if (next === null) throw new Error(`history tail does not fit: ${JSON.stringify(tail)}`);
        this.python = next;
        save.history = JSON.parse(JSON.stringify(next)) as Message[];
      }
      this.saves.push(save);
    }
  }

  on(name: string, callback: Listener): void {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name)!.add(callback);
  }

  off(name?: string | null, callback?: Listener | null): void {
    if (name && callback) this.listeners.get(name)?.delete(callback);
  }

  trigger(name: string, ...args: unknown[]): void {
    for (const cb of this.listeners.get(name) ?? []) (cb as (...a: unknown[]) => void)(...args);
  }

  /** Python sends a custom message. */
  fromPython(content: Record<string, unknown>): void {
    this.trigger("msg:custom", content, []);
  }

  /** Python-side view of a trait (the last value saved). */
  saved<K extends keyof ChatState>(name: K): ChatState[K] | undefined {
    for (let i = this.saves.length - 1; i >= 0; i -= 1) {
      if (name in this.saves[i]!) return this.saves[i]![name] as ChatState[K];
    }
    return undefined;
  }
}
