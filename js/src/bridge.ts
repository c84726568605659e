/**
 * Finding the bridge from inside a notebook page.
 *
 * JupyterLab 4 and Notebook 7 put `baseUrl` and `token` in the JSON of
 * `<script id="jupyter-config-data">`.  Where that is missing (VS Code, Colab)
 * or `GET {base}streamchat/api/backends` fails, there is no bridge and the
 * widget falls back to the kernel comm.
 */

import { authHeaders, joinUrl, readXsrfCookie } from "./client";
import { measureClock, type ClockAlignment, type FetchLike } from "./clock";
import { asRecord, type BackendInfo } from "./model";

export interface PageConfig {
  baseUrl: string;
  token: string;
}

/** `baseUrl` and `token` from the page, or null when not a Jupyter page. */
export function readPageConfig(doc: Document): PageConfig | null {
  const script = doc.getElementById("jupyter-config-data");
  if (script === null || !script.textContent) return null;
  let data: unknown;
  try {
    data = JSON.parse(script.textContent);
  } catch {
    return null;
  }
  const record = asRecord(data);
  if (record === null || typeof record.baseUrl !== "string") return null;
  return { baseUrl: record.baseUrl, token: typeof record.token === "string" ? record.token : "" };
}

export interface BackendsListing {
  default: string;
  backends: BackendInfo[];
}

/** Validate the `GET api/backends` answer (see docs/protocol.md). */
export function parseBackends(data: unknown): BackendsListing {
  const record = asRecord(data);
  const list = record?.backends;
  if (record === null || !Array.isArray(list)) throw new Error("api/backends: expected {default, backends: [...]}");
  const backends: BackendInfo[] = [];
  for (const item of list) {
    const entry = asRecord(item);
    if (entry !== null && typeof entry.name === "string") backends.push(entry as unknown as BackendInfo);
  }
  const fallback = backends[0]?.name ?? "";
  return { default: typeof record.default === "string" ? record.default : fallback, backends };
}

export interface Bridge {
  baseUrl: string;
  token: string;
  listing: BackendsListing;
  clock: ClockAlignment | null;
  /** When `clock` was measured (browser ms). */
  clockAt: number;
}

export type Discovery = { bridge: Bridge } | { bridge: null; reason: string };

export interface DiscoverOptions {
  doc: Document;
  fetch: FetchLike;
  now: () => number;
  /** Give up on `api/backends` after this long. */
  timeoutMs?: number;
}

/** The auth headers for a request now (the XSRF cookie is read each time). */
export function bridgeHeaders(bridge: Pick<Bridge, "token">, doc: Document): Record<string, string> {
  return authHeaders(bridge.token || undefined, readXsrfCookie(doc.cookie));
}

/** Look for the bridge; never throws. */
export async function discoverBridge(options: DiscoverOptions): Promise<Discovery> {
  const config = readPageConfig(options.doc);
  if (config === null) return { bridge: null, reason: "no #jupyter-config-data on this page (not JupyterLab / Notebook 7)" };
  const headers = bridgeHeaders(config, options.doc);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), options.timeoutMs ?? 5000);
  let listing: BackendsListing;
  try {
    const response = await options.fetch(joinUrl(config.baseUrl, "streamchat/api/backends"), {
      headers,
      signal: abort.signal,
      cache: "no-store",
    });
    if (!response.ok) return { bridge: null, reason: `GET streamchat/api/backends answered HTTP ${response.status}` };
    listing = parseBackends(await response.json());
  } catch (exc) {
    return { bridge: null, reason: `GET streamchat/api/backends failed: ${String(exc)}` };
  } finally {
    clearTimeout(timer);
  }
  const bridge: Bridge = { ...config, listing, clock: null, clockAt: options.now() };
  await refreshClock(bridge, options);
  return { bridge };
}

/** Measure (again) the clock offset to the server; keeps null on failure. */
export async function refreshClock(bridge: Bridge, options: Pick<DiscoverOptions, "doc" | "fetch" | "now">): Promise<void> {
  try {
    bridge.clock = await measureClock({
      url: joinUrl(bridge.baseUrl, "streamchat/api/clock"),
      fetch: options.fetch,
      headers: bridgeHeaders(bridge, options.doc),
      now: options.now,
    });
  } catch {
    bridge.clock = null;
  }
  bridge.clockAt = options.now();
}
