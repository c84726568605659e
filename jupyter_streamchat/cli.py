"""``jupyter streamchat`` (console script ``jupyter-streamchat``).

``demo``  start the four demo doors and print their URLs as one JSON line
``show``  stream one reply from each door and print the raw frames with arrival times
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence

from .demo.faults import ModelSpecError, parse_model
from .demo.profiles import PROFILES
from .demo.servers import DemoServers, is_loopback
from .demo.show import show
from .demo.stats import DOORS, Door
from .errors import ConfigError

__all__ = ["build_parser", "main"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a whole number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, got {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter streamchat", description="jupyter_streamchat command line tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="serve the demo model on all four doors",
        description=(
            "Serve the demo model over OpenAI SSE, Ollama NDJSON, JSON WebSocket and gRPC. "
            "Prints one JSON line with the URLs and backend configs, then serves until "
            "SIGINT/SIGTERM."
        ),
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    demo.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not a loopback address (the demo has no authentication)",
    )
    for flag, door in (
        ("--port-openai", "OpenAI SSE"),
        ("--port-ollama", "Ollama NDJSON"),
        ("--port-ws", "WebSocket"),
        ("--port-grpc", "gRPC"),
        ("--port-stats", "stats"),
    ):
        demo.add_argument(flag, type=_port, default=0, help=f"{door} port (default 0: a free port)")
    demo.add_argument(
        "--profile",
        default="steady",
        choices=sorted(PROFILES),
        help="profile used when a request names none (default steady)",
    )
    demo.add_argument(
        "--max-tokens",
        type=_positive,
        default=64,
        help="reply length when a request gives none (default 64)",
    )
    demo.add_argument(
        "--max-tokens-cap",
        type=_positive,
        default=4096,
        help="largest max_tokens a request may ask for (default 4096)",
    )
    demo.set_defaults(run=_run_demo)

    show_cmd = commands.add_parser(
        "show",
        help="print the raw frames of each door as they arrive",
        description="Start the demo in-process and stream one reply from each door, raw.",
    )
    show_cmd.add_argument(
        "--profile",
        default="steady",
        help="model name PROFILE[:FAULT[@N]], e.g. slow or steady:drop@3 (default steady)",
    )
    show_cmd.add_argument("--prompt", default="Tell me a story.", help="the user message")
    show_cmd.add_argument(
        "--max-tokens", type=_positive, default=12, help="tokens per reply (default 12)"
    )
    show_cmd.add_argument(
        "--door",
        action="append",
        choices=DOORS,
        help="only this door (repeatable; default all four)",
    )
    show_cmd.set_defaults(run=_run_show)
    return parser


async def _serve(args: argparse.Namespace) -> int:
    demo = DemoServers(
        host=args.host,
        port_openai=args.port_openai,
        port_ollama=args.port_ollama,
        port_ws=args.port_ws,
        port_grpc=args.port_grpc,
        port_stats=args.port_stats,
        default_profile=args.profile,
        default_max_tokens=args.max_tokens,
        max_tokens_cap=args.max_tokens_cap,
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        await demo.start()
    except OSError as exc:
        print(f"jupyter streamchat demo: cannot listen: {exc}", file=sys.stderr)
        return 1
    try:
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        print(json.dumps(demo.urls()), flush=True)
        print(
            f"demo model serving (default profile {args.profile!r}); stats at {demo.stats}; "
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await demo.stop()
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    if not args.allow_remote and not is_loopback(args.host):
        print(
            f"jupyter streamchat demo: --host {args.host!r} is not a loopback address; "
            "the demo has no authentication, pass --allow-remote to serve it anyway",
            file=sys.stderr,
        )
        return 2
    if args.max_tokens > args.max_tokens_cap:
        print(
            f"jupyter streamchat demo: --max-tokens {args.max_tokens} is over "
            f"--max-tokens-cap {args.max_tokens_cap}",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(_serve(args))
    except ConfigError as exc:
        print(f"jupyter streamchat demo: {exc}", file=sys.stderr)
        return 2


def _run_show(args: argparse.Namespace) -> int:
    try:
        parse_model(args.profile, PROFILES, "steady")
    except ModelSpecError as exc:
        print(f"jupyter streamchat show: {exc}", file=sys.stderr)
        return 2
    doors: tuple[Door, ...] = tuple(args.door) if args.door else DOORS
    coro = show(
        model=args.profile,
        prompt=args.prompt,
        max_tokens=args.max_tokens,
        doors=doors,
        out=sys.stdout,
    )
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jupyter-streamchat``; returns the exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
