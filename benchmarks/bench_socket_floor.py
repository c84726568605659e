"""The least CPU any relay can spend per token on this machine: no Python work at all.

A relay that forwards each token the moment it arrives makes, per token, at
least one ``recv`` (the backend's frame) and one ``send`` (to the browser), and
when streams are sparse, one wake-up from the poller first.  This measures
exactly those system calls over a loopback TCP pair with ``TCP_NODELAY`` — no
event loop, no parsing, no framing — and reports process CPU (user + sys) per
token.  Whatever it prints is a floor under the bridge, the bytes-only proxy
and any other relay measured on the same machine.

    python benchmarks/bench_socket_floor.py [--tokens 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket

TOKEN_FRAME = b'data: {"type":"token","seq":1,"text":" hello","t":{"emit":1.0}}\n\n'


def _pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener, client, server


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def per_token_us(tokens: int, *, poll: bool) -> float:
    """CPU µs per token for one ``send`` + one ``recv`` (+ one poll wake-up)."""
    listener, client, server = _pair()
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    try:
        started = _cpu()
        for _ in range(tokens):
            client.send(TOKEN_FRAME)
            if poll:
                selector.select(1.0)
            server.recv(65536)
        return (_cpu() - started) / tokens * 1e6
    finally:
        selector.close()
        for sock in (client, server, listener):
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not 1_000 <= args.tokens <= 5_000_000 or not 1 <= args.repeat <= 20:
        parser.error("--tokens must be 1,000-5,000,000 and --repeat 1-20")
    for label, poll in (("send + recv", False), ("poll wake-up + send + recv", True)):
        runs = sorted(per_token_us(args.tokens, poll=poll) for _ in range(args.repeat))
        print(
            f"{label}: median {runs[len(runs) // 2]:.2f} us CPU per token "
            f"(best {runs[0]:.2f}, {args.repeat} runs of {args.tokens:,})"
        )


if __name__ == "__main__":
    main()
