"""Bridge performance, as ratios to a direct connection measured in the same run.

    python benchmarks/bench_bridge.py [--streams 100] [--rate-profile fast] [--repeat 2]

Three processes on loopback: the demo model (``jupyter streamchat demo``), a
Jupyter server with the extension, and this client.  Scenarios:

``load``   N concurrent streams at 200 tok/s each (the ``fast`` profile),
           direct to the demo's OpenAI door vs through ``api/chat``; per-token
           latency = client arrival - backend emit stamp; the bridge's added
           latency is the difference of the two distributions' percentiles.
``cpu``    the Jupyter server's CPU seconds (user+sys, /proc) per token relayed,
           at that load and for a flood.
``flood``  one stream as fast as the demo can go (``instant``), tokens/s
           direct vs bridged.

Every loop is bounded: fixed stream counts, fixed token counts, timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from harness import (
    SSEClient,
    StreamResult,
    byte_proxy_process,
    cpu_seconds,
    demo_process,
    flood_backend_process,
    jupyter_process,
    percentile,
)

MESSAGES = [{"role": "user", "content": "Tell me a long story about a rabbit hole."}]


async def run_streams(
    client: SSEClient, bodies: list[dict[str, Any]], stagger_s: float
) -> tuple[list[StreamResult], float]:
    async def one(i: int, body: dict[str, Any]) -> StreamResult:
        await asyncio.sleep(i * stagger_s)
        return await client.post(body)

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i, b) for i, b in enumerate(bodies)))
    return list(results), time.perf_counter() - started


def summarize(results: list[StreamResult]) -> dict[str, Any]:
    latencies = [x for r in results for x in r.latencies]
    return {
        "streams": len(results),
        "ok": sum(1 for r in results if r.status == 200 and r.done),
        "tokens": sum(r.text_events for r in results),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p90_ms": round(percentile(latencies, 90), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
    }


def _paths(
    demo: dict[str, Any], proxy: dict[str, Any], bridge: dict[str, Any]
) -> dict[str, SSEClient]:
    auth = {"Authorization": f"token {bridge['token']}"}
    return {
        "direct": SSEClient(demo["openai"] + "/chat/completions"),
        "byte_proxy": SSEClient(proxy["base"] + "chat/completions"),
        "bridge": SSEClient(bridge["base"] + "api/chat", auth, marker=b"event: token"),
    }


def _body(path: str, profile: str, tokens: int) -> dict[str, Any]:
    if path == "bridge":
        return {
            "backend": "demo-sse", "model": profile, "messages": MESSAGES,
            "options": {"max_tokens": tokens},
        }  # fmt: skip
    return {"model": profile, "messages": MESSAGES, "stream": True, "max_tokens": tokens}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


async def scenario_load(
    paths: dict[str, SSEClient], pids: dict[str, int], streams: int, tokens: int, profile: str,
    repeat: int,
) -> dict[str, Any]:  # fmt: skip
    stagger = 1.0 / streams / 10  # spread the starts over ~0.1 s, like real users
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
    for _ in range(repeat):
        for name, client in paths.items():
            before = cpu_seconds(pids[name]) if name in pids else 0.0
            results, _ = await run_streams(
                client, [_body(name, profile, tokens)] * streams, stagger
            )
            summary = summarize(results)
            if name in pids:
                used = cpu_seconds(pids[name]) - before
                summary["cpu_us_per_token"] = round(used / max(1, summary["tokens"]) * 1e6, 2)
            runs[name].append(summary)
    out: dict[str, Any] = {"runs": runs}
    for name in ("byte_proxy", "bridge"):
        for q in ("p50_ms", "p99_ms"):
            added = _median([r[q] for r in runs[name]]) - _median([r[q] for r in runs["direct"]])
            out[f"{name}_added_{q}"] = round(added, 3)
        out[f"{name}_cpu_us_per_token"] = _median([r["cpu_us_per_token"] for r in runs[name]])
    out["bridge_cpu_vs_byte_proxy"] = round(
        out["bridge_cpu_us_per_token"] / out["byte_proxy_cpu_us_per_token"], 2
    )
    return out


async def scenario_flood(
    paths: dict[str, SSEClient], pids: dict[str, int], tokens: int, repeat: int
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in pids}
    for _ in range(repeat):
        for name, client in paths.items():
            before = cpu_seconds(pids[name]) if name in pids else 0.0
            started = time.perf_counter()
            result = await client.post(_body(name, "instant", tokens))
            elapsed = time.perf_counter() - started
            if not (result.done and result.status == 200):
                raise RuntimeError(f"{name}: status {result.status}, {result.error}")
            rates[name].append(tokens / elapsed)
            if name in pids:
                cpu[name].append((cpu_seconds(pids[name]) - before) / tokens * 1e6)
    out: dict[str, Any] = {f"{n}_tok_s": round(_median(v)) for n, v in rates.items()}
    out.update({f"{n}_cpu_us_per_token": round(_median(v), 2) for n, v in cpu.items()})
    out["bridge_vs_direct"] = round(out["bridge_tok_s"] / out["direct_tok_s"], 2)
    out["byte_proxy_vs_direct"] = round(out["byte_proxy_tok_s"] / out["direct_tok_s"], 2)
    return out


async def scenario_capacity(
    paths: dict[str, SSEClient], pid: int, tokens: int, repeat: int
) -> dict[str, Any]:
    """One stream from a backend that is never the bottleneck: the bridge's own ceiling."""
    direct, bridged = paths["direct"], paths["bridge"]
    rates: dict[str, list[float]] = {"direct": [], "bridge": []}
    cpu: list[float] = []
    for _ in range(repeat):
        for name, client in (("direct", direct), ("bridge", bridged)):
            body: dict[str, Any]
            if name == "bridge":
                body = {"backend": "flood", "messages": MESSAGES, "options": {"max_tokens": tokens}}
            else:
                body = {"model": "flood", "messages": MESSAGES, "stream": True}
            before = cpu_seconds(pid)
            started = time.perf_counter()
            result = await client.post(body)
            elapsed = time.perf_counter() - started
            if result.status != 200 or result.text_events < tokens:
                raise RuntimeError(f"{name}: status {result.status}, {result.text_events} tokens")
            rates[name].append(tokens / elapsed)
            if name == "bridge":
                cpu.append((cpu_seconds(pid) - before) / tokens * 1e6)
    out = {f"{n}_tok_s": round(_median(v)) for n, v in rates.items()}
    out["bridge_vs_direct"] = round(out["bridge_tok_s"] / out["direct_tok_s"], 2)
    out["bridge_cpu_us_per_token"] = round(_median(cpu), 2)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument(
        "--tokens", type=int, default=400, help="tokens per stream in the load scenario"
    )
    parser.add_argument("--profile", default="fast", help="demo profile of the load scenario")
    parser.add_argument("--flood-tokens", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--capacity-tokens", type=int, default=200_000)
    parser.add_argument("--only", choices=("load", "flood", "capacity"), default=None)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if not 1 <= args.streams <= 500 or not 1 <= args.repeat <= 10:
        parser.error("--streams must be 1-500 and --repeat 1-10")

    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
    }
    with contextlib.ExitStack() as stack:
        demo = stack.enter_context(demo_process(max_tokens_cap=max(args.flood_tokens, args.tokens)))
        flood = stack.enter_context(flood_backend_process(args.capacity_tokens))
        backends = {
            "demo-sse": {"protocol": "openai", "url": demo.info["openai"]},
            "flood": {"protocol": "openai", "url": flood.info["openai"]},
        }
        server = stack.enter_context(
            jupyter_process(backends, max_concurrent_streams=max(64, args.streams * 2))
        )
        proxy = stack.enter_context(byte_proxy_process(demo.info["openai"] + "/"))
        paths = _paths(demo.info, proxy.info, server.info)
        pids = {"bridge": server.pid, "byte_proxy": proxy.pid}
        # Warm up: first requests pay for imports and connection setup.
        for name, client in paths.items():
            for _ in range(3):
                await client.post(_body(name, "instant", 50))
        if args.only in (None, "load"):
            results["load"] = await scenario_load(
                paths, pids, args.streams, args.tokens, args.profile, args.repeat
            )
            print(
                json.dumps({"load": {k: v for k, v in results["load"].items() if k != "runs"}}),
                flush=True,
            )
        if args.only in (None, "flood"):
            results["flood"] = await scenario_flood(paths, pids, args.flood_tokens, args.repeat)
            print(json.dumps({"flood": results["flood"]}), flush=True)
        if args.only in (None, "capacity"):
            capacity_paths = {
                "direct": SSEClient(flood.info["openai"] + "/chat/completions"),
                "bridge": paths["bridge"],
            }
            results["capacity"] = await scenario_capacity(
                capacity_paths, server.pid, args.capacity_tokens, args.repeat
            )
            print(json.dumps({"capacity": results["capacity"]}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
