"""The `engine-bridge` command: parses arguments, then calls one function per subcommand."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .client import Client, NoReply, recv_publication, subscribe
from .config import DEFAULT_INGRESS, DEFAULT_PUBLISH, ConfigError, load
from .protocol import CATEGORIES, CONFIG_PREFIX

DESCRIPTION = """\
engine-bridge runs beside your game: engines send analytics events to it over ZeroMQ, it stores them
durably and forwards them to GameAnalytics, GameRamp and staq; remote configs flow back to the game.

Start the daemon with `engine-bridge run` (no configuration needed to try it), then look at it with
`engine-bridge status`, send a test event with `engine-bridge send`, watch configs with
`engine-bridge configs`, or see everything at work with `engine-bridge demo`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine-bridge", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"engine-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the daemon (Ctrl-C stops it cleanly)",
                         description="Run the daemon. With no --config it runs on the embedded default: "
                                     "loopback endpoints, SQLite in the per-user data directory, the "
                                     "GameAnalytics sandbox keys.")
    run.add_argument("--config", type=Path, help="a TOML configuration file (see bridge.example.toml)")
    run.add_argument("--data-dir", type=Path, help="where the SQLite store lives (default: per-user data dir)")
    run.add_argument("--store", dest="store_url", help="a SQLAlchemy database URL, e.g. postgresql+psycopg://...")
    run.add_argument("--ingress", help=f"endpoint for engine requests (default {DEFAULT_INGRESS})")
    run.add_argument("--publish", help=f"endpoint for config publications (default {DEFAULT_PUBLISH})")
    run.add_argument("--durability", choices=("normal", "full"),
                     help="normal: an ack survives a daemon crash; full: also a power loss (slower)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    run.add_argument("--on-corrupt-store", choices=("stop", "move-aside"),
                     help="a damaged SQLite store: stop with exit code 5 (default), or move it aside (kept for "
                          "inspection) and start with an empty one")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="ask a running daemon for its queues, rates and last errors")
    _endpoint_arg(status)
    status.add_argument("--json", action="store_true", help="print the raw stats reply as JSON")
    status.set_defaults(func=cmd_status)

    send = sub.add_parser("send", help="send one event from the shell",
                          description="Send one event and print the daemon's ack. Fields are KEY=VALUE; "
                                      "a VALUE that reads as JSON (numbers, true, {...}) is sent as such, "
                                      "else as a string. Example: engine-bridge send design event_id=ui:play "
                                      "value=1.5")
    send.add_argument("category", choices=CATEGORIES)
    send.add_argument("fields", nargs="*", metavar="KEY=VALUE")
    send.add_argument("--device-id", default="cli", help="the device the event is sent as (default: cli)")
    send.add_argument("--user-id", help="the user the event belongs to (default: the device)")
    _endpoint_arg(send)
    send.set_defaults(func=cmd_send)

    cfg = sub.add_parser("configs", help="print config updates as they are published",
                         description="Subscribe to the configs socket and print each publication as one JSON "
                                     "line: the current values at once, then every change.")
    cfg.add_argument("--publish", default=DEFAULT_PUBLISH, help=f"configs endpoint (default {DEFAULT_PUBLISH})")
    cfg.add_argument("--prefix", default=CONFIG_PREFIX, help=f"topic prefix (default {CONFIG_PREFIX})")
    cfg.add_argument("--once", action="store_true", help="ask the daemon for the current values, print them, exit")
    _endpoint_arg(cfg)
    cfg.add_argument("--seconds", type=float, help="stop after this many seconds")
    cfg.set_defaults(func=cmd_configs)

    dead = sub.add_parser("dead-letters", help="list events a provider refused, and re-queue them after a fix",
                          description="Events a provider refused for good (invalid by its rules, rejected by "
                                      "its API) wait here with the reason. Fix the cause (the event's fields "
                                      "in the game, the provider's settings), then --requeue sends them again.")
    _store_args(dead)
    dead.add_argument("--provider", help="only this provider's dead letters")
    dead.add_argument("--requeue", action="store_true", help="send them again (the running daemon picks them up)")
    dead.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    dead.set_defaults(func=cmd_dead_letters)

    _endpoint_arg(_command(sub, cmd_forget, "erase a player: every local trace, and a ledger entry per provider",
                           "Ask the running daemon to forget a player (protocol.md section 4.11): their events, "
                           "sessions, purchases and topics go, and each provider's entry in the erasure ledger says "
                           "what to ask of it (engine-bridge privacy).", {
                               "--device": {"dest": "device_id", "required": True, "help": "the player's device id"},
                               "--user": {"dest": "user_id",
                                          "help": "the player's user id (default: the device's own player)"}}))
    _store_args(_command(sub, cmd_privacy, "list or export the erasure ledger (CSV or JSON)",
                         "Every erasure ledger entry: a forgotten player, per provider, when it was asked and what "
                         "became of it; the manual requests are for the studio to send to the provider.", {
                             "--status": {"help": "only entries of this status (pending, requested, manual, sent, "
                                                  "failed)"},
                             "--mark-sent": {"type": int, "nargs": "+", "metavar": "PK",
                                             "help": "record these manual requests as sent to their provider"},
                             "--format": {"choices": ("csv", "json"), "default": "csv"},
                             "--output": {"type": Path, "help": "write to this file instead of standard output"}}))

    keys = sub.add_parser("keys", help="print this daemon's CURVE public key (a relay's, or an edge's)",
                          description="A relay prints the public key every edge's [providers.relay] relay_key "
                                      "names; an edge (--edge) prints the key a relay's allow-list names. The "
                                      "pair is made in the data directory on first use; the secret half never "
                                      "leaves it.")
    keys.add_argument("--config", type=Path, help="the daemon's TOML configuration file")
    keys.add_argument("--data-dir", type=Path, help="the daemon's data directory")
    keys.add_argument("--edge", action="store_true", help="the edge's client key instead of the relay's")
    keys.set_defaults(func=cmd_keys)

    sandbox = sub.add_parser("sandbox", add_help=False,
                             help="run local GameAnalytics, GameRamp and staq emulators to try events against",
                             description="Local HTTP servers that behave like the providers: they check "
                                         "signatures and every event, log each call accepted or refused with the "
                                         "reason, and take faults on command. Point a provider's endpoint at one. "
                                         "Options: engine-bridge sandbox --help.")
    sandbox.set_defaults(func=cmd_sandbox)

    demo = sub.add_parser("demo", help="run the daemon with a scripted sample game and show it working")
    demo.add_argument("--events", type=int, default=5000, help="how many events the sample game sends")
    demo.set_defaults(func=cmd_demo)
    return parser


def _command(sub: Any, func: Any, summary: str, description: str,
             arguments: dict[str, dict[str, Any]]) -> argparse.ArgumentParser:
    """A subcommand named after its function (`cmd_forget`: `forget`), with its options."""
    parser: argparse.ArgumentParser = sub.add_parser(func.__name__.removeprefix("cmd_").replace("_", "-"),
                                                     help=summary, description=description)
    parser.set_defaults(func=func)
    for flag, options in arguments.items():
        parser.add_argument(flag, **options)
    return parser


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="the daemon's TOML configuration file")
    parser.add_argument("--data-dir", type=Path, help="the daemon's data directory")
    parser.add_argument("--store", dest="store_url", help="a SQLAlchemy database URL")


def _endpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ingress", default=DEFAULT_INGRESS, help=f"daemon endpoint (default {DEFAULT_INGRESS})")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "sandbox":
        args.options = rest  # the sandbox parses its own options
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"engine-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    except NoReply as exc:
        print(f"engine-bridge: {exc}: is the daemon running? (engine-bridge run)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import Daemon, StartupError
    from .logs import setup_logging

    settings = load(args.config, data_dir=args.data_dir, store_url=args.store_url, ingress=args.ingress,
                    publish=args.publish, durability=args.durability, log_level=args.log_level,
                    on_corrupt_store=args.on_corrupt_store and args.on_corrupt_store.replace("-", "_"))
    setup_logging(settings)
    try:
        daemon = Daemon(settings)
    except StartupError as exc:
        print(f"engine-bridge: {exc}", file=sys.stderr)
        return int(exc.code)
    return int(daemon.run())


def _hello(endpoint: str, device_id: str | None = None) -> Client:
    """A connection of the CLI's: a tool that only reads, unless it sends an event as `device_id`."""
    client = Client(endpoint, timeout_ms=3000, device_id=device_id or "cli")
    client.hello(engine="cli", **({} if device_id else {"role": "tool"}))
    return client


def cmd_status(args: argparse.Namespace) -> int:
    with _hello(args.ingress) as client:
        stats = client.request({"type": "stats"})
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(format_status(stats))
    return 0


def format_status(stats: dict[str, Any]) -> str:
    """The stats reply as a page a person reads at a glance."""
    store = stats["store"]
    lines = [
        f"engine-bridge {stats['daemon_version']}, up {stats['uptime_s']:.0f} s, {stats['clients']} client(s)",
        f"store      {store['url']}",
        f"events     {store['events']} stored, {store['undelivered']} not yet delivered"
        + (f", {store['held']} held for their players' consent" if store.get("held") else ""),
        f"this run   {stats['received']} received, {stats['stored']} stored, {stats['duplicates']} duplicates, "
        f"{stats['rejected']} rejected, {stats['errors']} error replies, "
        f"{stats.get('replies_dropped', 0)} replies and {stats.get('requests_dropped', 0)} requests dropped "
        "(peers that did not read)",
        f"rate       {stats['rate_10s']:.1f} events/s (last 10 s)",
    ]
    for name, figures in stats["providers"].items():
        lines.extend(format_provider(name, dict(figures)))
    if not stats["providers"]:
        lines.append("providers  none configured")
    for err in stats["last_errors"]:
        at = time.strftime("%H:%M:%S", time.localtime(err["at"] / 1000))
        lines.append(f"error      {at} {err['code']}: {err['message']}")
    return "\n".join(lines)


def format_provider(name: str, figures: dict[str, Any]) -> list[str]:
    """A provider's delivery figures first, what went wrong loudly, its own figures after."""
    lines = [f"provider   {name}: {figures.pop('queued')} queued, {figures.pop('in_flight')} in flight, "
             f"{figures.pop('delivered')} delivered, {figures.pop('dead_lettered')} dead-lettered"]
    paused = figures.pop("paused", None)
    if paused:
        lines.append(f"           PAUSED: {paused}")
    error, at = figures.pop("last_error"), figures.pop("last_error_at")
    if error:
        when = time.strftime("%H:%M:%S", time.localtime(at / 1000)) if at else "?"
        lines.append(f"           last error at {when}: {error}")
    retry = figures.pop("next_retry_at")
    if retry:
        lines.append(f"           next retry in {max(0.0, retry / 1000 - time.time()):.1f} s")
    extra = ", ".join(f"{k} {v}" for k, v in figures.items() if v is not None)
    if extra:
        lines.append(f"           {extra}")
    return lines


def parse_fields(pairs: list[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"engine-bridge send: {pair!r} is not KEY=VALUE")
        try:
            fields[key] = json.loads(raw)
        except json.JSONDecodeError:
            fields[key] = raw
    return fields


def cmd_send(args: argparse.Namespace) -> int:
    import uuid

    event: dict[str, Any] = {"id": str(uuid.uuid4()), "category": args.category, "ts": int(time.time() * 1000),
                             "fields": parse_fields(args.fields)}
    if args.user_id:
        event["user_id"] = args.user_id
    with _hello(args.ingress, args.device_id) as client:
        reply = client.request({"type": "event", "event": event})
    print(json.dumps(reply))
    return 0 if reply["type"] == "ack" and not reply["rejected"] else 1


def cmd_configs(args: argparse.Namespace) -> int:
    if args.once:
        with _hello(args.ingress) as client:
            reply = client.request({"type": "configs", "prefix": args.prefix})
        for publication in reply["topics"].values():
            print(json.dumps(publication, default=str))
        return 0
    sock = subscribe(args.publish, args.prefix)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            publication = recv_publication(sock, 200)
            if publication is not None:
                print(json.dumps(publication, default=str), flush=True)
    finally:
        sock.close(0)
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from .store import Delivery, Store

    settings = load(args.config, data_dir=args.data_dir, store_url=args.store_url)
    store = Store(settings.resolved_store_url, settings.durability)
    store.upgrade()
    delivery = Delivery(store)
    try:
        letters = delivery.dead_letters(args.provider, limit=10_000)
        for d in letters:
            if args.json:
                print(json.dumps({"provider": d.provider, "event_pk": d.event_pk, "uid": d.uid,
                                  "category": d.category, "code": d.code, "reason": d.reason,
                                  "created_at": d.created_at}))
            else:
                at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(d.created_at / 1000))
                print(f"{at}  {d.provider:<14} {d.category or '?':<12} {d.uid or '?':<38} {d.code}: {d.reason}")
        if args.requeue:
            print(f"re-queued {delivery.requeue(args.provider)} dead letter(s)", file=sys.stderr)
        elif not args.json:
            print(f"{len(letters)} dead letter(s)", file=sys.stderr)
    finally:
        store.dispose()
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    msg: dict[str, Any] = {"type": "forget", "device_id": args.device_id}
    if args.user_id:
        msg["user_id"] = args.user_id
    with _hello(args.ingress) as client:
        reply = client.request(msg)
    print(json.dumps(reply))
    return 0 if reply["type"] == "forgotten" else 1


LEDGER_COLUMNS = ("pk", "provider", "device_id", "user_id", "own", "requested_at", "status", "done_at", "ids",
                  "detail")


def cmd_privacy(args: argparse.Namespace) -> int:
    import csv
    import io

    from .store import Ledger, Store

    settings = load(args.config, data_dir=args.data_dir, store_url=args.store_url)
    store = Store(settings.resolved_store_url, settings.durability)
    store.upgrade()
    try:
        if args.mark_sent:
            print(f"{Ledger(store).mark_sent(args.mark_sent)} manual request(s) recorded as sent", file=sys.stderr)
        rows = [{name: getattr(entry, name) for name in LEDGER_COLUMNS} for entry in Ledger(store).entries(args.status)]
    finally:
        store.dispose()
    out = io.StringIO()
    if args.format == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
    else:
        writer = csv.DictWriter(out, LEDGER_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**row, "ids": json.dumps(row["ids"], sort_keys=True)} for row in rows)
    if args.output is not None:
        args.output.write_text(out.getvalue(), encoding="utf-8")
        print(f"{len(rows)} erasure ledger entr{'y' if len(rows) == 1 else 'ies'} written to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(out.getvalue())
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from .keys import EDGE, RELAY, key_pair

    settings = load(args.config, data_dir=args.data_dir)
    print(key_pair(settings.data_dir, EDGE if args.edge else RELAY).public.decode())
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox.run import main as sandbox_main

    return sandbox_main(args.options)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.events)

