"""All three provider sandboxes at once: what `engine-bridge sandbox` runs.

Each emulator gets its own `SandboxServer` (its own port), as each provider has its own base URL. On start
one line per sandbox, `<Name> sandbox listening on <url>`, goes to stdout with the credentials to put in
the daemon's configuration under it; SIGINT or SIGTERM stops all three.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bridge.sandbox import gameanalytics, gameramp, staq
from bridge.sandbox.api import announce, start_logging
from bridge.sandbox.gameanalytics import SANDBOX_GAME_KEY, SANDBOX_SECRET_KEY, GameAnalyticsSandbox
from bridge.sandbox.gameramp import GameRampSandbox
from bridge.sandbox.server import SandboxServer, serve_until_signalled
from bridge.sandbox.staq import StaqSandbox


def serve_all(host: str = "127.0.0.1", gameanalytics_port: int = 0, gameramp_port: int = 0, staq_port: int = 0,
              *, log_events: bool = True) -> None:
    """Run the GameAnalytics, GameRamp and staq sandboxes until SIGINT or SIGTERM (port 0: a free one).

    Raises OSError if a port is taken; then none of them keeps running."""
    start_logging([gameanalytics.log, gameramp.log, staq.log], log_events)
    ramp, staq_sandbox = GameRampSandbox(), StaqSandbox()
    first = [SandboxServer(GameAnalyticsSandbox(), host, gameanalytics_port), SandboxServer(ramp, host, gameramp_port)]
    last = SandboxServer(staq_sandbox, host, staq_port)
    started: list[SandboxServer] = []

    def announce_all(server: SandboxServer) -> None:
        announce("GameAnalytics", first[0].url, [f"game key {SANDBOX_GAME_KEY} secret key {SANDBOX_SECRET_KEY}"])
        announce(ramp.label, first[1].url, ramp.credentials())
        announce(staq_sandbox.label, server.url, staq_sandbox.credentials())

    try:
        for server in first:
            started.append(server.start())
        serve_until_signalled(last, announce_all)
    finally:
        for server in started:
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bridge.sandbox.run [--gameramp-port N] ...`: the three sandboxes."""
    parser = argparse.ArgumentParser(prog="engine-bridge sandbox",
                                     description="Local GameAnalytics, GameRamp and staq APIs for development "
                                                 "and tests.")
    parser.add_argument("--host", default="127.0.0.1", help="IP address to bind (default 127.0.0.1)")
    for name in ("gameanalytics", "gameramp", "staq"):
        parser.add_argument(f"--{name}-port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--quiet", action="store_true", help="log only the refused calls")
    args = parser.parse_args(argv)
    try:
        serve_all(args.host, args.gameanalytics_port, args.gameramp_port, args.staq_port, log_events=not args.quiet)
    except (OSError, ValueError) as exc:
        print(f"engine-bridge sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
