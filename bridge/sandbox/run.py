"""All three provider sandboxes at once: what `engine-bridge sandbox` runs.

Each emulator gets its own `SandboxServer` (its own port), as each provider has its own base URL. On start
one line per sandbox, `<Name> sandbox listening on <url>`, goes to stdout with the credentials to put in
the daemon's configuration under it; SIGINT or SIGTERM stops all three. `--latency-ms N` answers every
GameAnalytics collector request N ms late (`SandboxServer`'s `latency_s`), each on its own: a client with
several requests out waits N for each, side by side, as with a collector far away.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from bridge.sandbox import gameanalytics, gameramp, staq
from bridge.sandbox.api import announce, start_logging
from bridge.sandbox.faults import MAX_DELAY_S
from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY, GameAnalyticsSandbox
from bridge.sandbox.gameramp import GameRampSandbox
from bridge.sandbox.server import SandboxServer, serve_until_signalled
from bridge.sandbox.staq import StaqSandbox


def serve_all(host: str = "127.0.0.1", gameanalytics_port: int = 0, gameramp_port: int = 0, staq_port: int = 0,
              *, log_events: bool = True, gameanalytics_latency_s: float = 0.0) -> None:
    """Run the GameAnalytics, GameRamp and staq sandboxes until SIGINT or SIGTERM (port 0: a free one).

    `gameanalytics_latency_s` delays every GameAnalytics collector answer (not its admin routes).
    Raises OSError if a port is taken, ValueError for a latency out of range; then none of them keeps running."""
    start_logging([gameanalytics.log, gameramp.log, staq.log], log_events)
    ramp, staq_sandbox = GameRampSandbox(), StaqSandbox()
    first = [SandboxServer(GameAnalyticsSandbox(), host, gameanalytics_port, latency_s=gameanalytics_latency_s),
             SandboxServer(ramp, host, gameramp_port)]
    last = SandboxServer(staq_sandbox, host, staq_port)
    started: list[SandboxServer] = []

    def announce_all(server: SandboxServer) -> None:
        late = [f"answers every collector request {gameanalytics_latency_s * 1000:g} ms late"] \
            if gameanalytics_latency_s else []
        announce("GameAnalytics", first[0].url,
                 [f"game key {SANDBOX_GAME_KEY} secret key {SANDBOX_SECRET_KEY}", *late])
        announce(ramp.label, first[1].url, ramp.credentials())
        announce(staq_sandbox.label, server.url, staq_sandbox.credentials())

    try:
        for server in first:
            started.append(server.start())
        serve_until_signalled(last, announce_all)
    finally:
        for server in started:
            server.stop()


def latency_ms(text: str) -> float:
    """The `--latency-ms` value: milliseconds from 0 to the faults' longest delay."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_DELAY_S * 1000:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_DELAY_S * 1000:g} ms, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bridge.sandbox.run [--gameramp-port N] ...`: the three sandboxes."""
    parser = argparse.ArgumentParser(prog="engine-bridge sandbox",
                                     description="Local GameAnalytics, GameRamp and staq APIs for development "
                                                 "and tests.")
    parser.add_argument("--host", default="127.0.0.1", help="IP address to bind (default 127.0.0.1)")
    for name in ("gameanalytics", "gameramp", "staq"):
        parser.add_argument(f"--{name}-port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--quiet", action="store_true", help="log only the refused calls")
    parser.add_argument("--latency-ms", type=latency_ms, default=0.0, metavar="N",
                        help="answer every GameAnalytics collector request N ms late, each on its own (concurrent "
                             "requests wait side by side); admin routes answer at once (default 0)")
    args = parser.parse_args(argv)
    try:
        serve_all(args.host, args.gameanalytics_port, args.gameramp_port, args.staq_port, log_events=not args.quiet,
                  gameanalytics_latency_s=args.latency_ms / 1000)
    except (OSError, ValueError) as exc:
        print(f"engine-bridge sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
