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
from .config import DEFAULT_HTTP, DEFAULT_INGRESS, DEFAULT_PUBLISH, ConfigError, load
from .game import default_endpoints
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
                                     "loopback endpoints, SQLite in the per-user data directory, no provider "
                                     "(events are stored, forwarded nowhere). With --game its endpoints, data "
                                     "directory and log are the game's own.")
    run.add_argument("--config", type=Path, help="a TOML configuration file (see bridge.example.toml)")
    run.add_argument("--data-dir", type=Path, help="where the SQLite store lives (default: per-user data dir)")
    run.add_argument("--store", dest="store_url", help="a SQLAlchemy database URL, e.g. postgresql+psycopg://...")
    run.add_argument("--ingress", help=f"endpoint for engine requests (default {DEFAULT_INGRESS})")
    run.add_argument("--publish", help=f"endpoint for config publications (default {DEFAULT_PUBLISH})")
    run.add_argument("--durability", choices=("normal", "full"),
                     help="normal: an ack survives a daemon crash; full: also a power loss (slower)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    run.add_argument("--http", help="HOST:PORT on loopback for /health, /metrics and the inspector page "
                                    f"(e.g. {DEFAULT_HTTP}; default: [daemon] http, else off)")
    run.add_argument("--on-corrupt-store", choices=("stop", "move-aside"),
                     help="a damaged SQLite store: stop with exit code 5 (default), or move it aside (kept for "
                          "inspection) and start with an empty one")
    run.add_argument("--game", help="the game this daemon serves (1-32 of a-z 0-9 _ -): its own endpoints, data "
                                    "directory and log; a hello for another game is refused")
    run.add_argument("--log-file", type=Path, help="also log here (default with --game: its data directory)")
    run.add_argument("--sandbox", action="store_true",
                     help="development only: deliver to GameAnalytics' public sandbox game with its published keys")
    run.add_argument("--parent-pipe", action="store_true",
                     help="stop cleanly when standard input reaches its end: the launching game keeps a pipe to "
                          "it, which the OS closes when the game ends, however it ends")
    run.add_argument("--parent-pid", type=int, metavar="PID",
                     help="stop cleanly when process PID (the game that launched the daemon) is gone")
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
    cfg.add_argument("--publish", help=f"configs endpoint (default {DEFAULT_PUBLISH}, or the game's)")
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

    bundle = sub.add_parser("bundle", help="build the self-contained daemon folder a game ships (PyInstaller)",
                            description="Freeze the daemon with PyInstaller (a build dependency: pip install "
                                        "'engine-bridge[bundle]') into DIR/engine-bridge, one folder with every "
                                        "built-in provider; players need no Python. Build on the oldest OS "
                                        "release the game supports (the bundle needs its glibc or newer).")
    bundle.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the folder is made")
    bundle.add_argument("--with", dest="packages", action="append", default=[], metavar="PACKAGE",
                        help="a third-party provider's package to bundle too (its modules and entry point)")
    bundle.set_defaults(func=cmd_bundle)

    top = sub.add_parser("top", help="a live view of a running daemon, every second (q quits)",
                         description="Rates, queues and state per provider and the last errors of a running "
                                     "daemon, redrawn every second in the terminal (over SSH too); q quits.")
    _endpoint_arg(top)
    top.set_defaults(func=cmd_top)

    tap = sub.add_parser("tap", help="print events as they happen: stored, delivered, dead-lettered, duplicates",
                         description="Follow the daemon's event feed (it needs [daemon] http): each event as it is "
                                     "stored (with each provider's early word), delivered or dead-lettered (with "
                                     "the reason), and duplicates. A tap that cannot keep up loses its own lines "
                                     "and says how many; the daemon never waits for it.")
    tap.add_argument("--http", default=DEFAULT_HTTP, help=f"the daemon's [daemon] http (default {DEFAULT_HTTP})")
    tap.add_argument("--category", action="append", default=[], help="only this category (repeatable)")
    tap.add_argument("--provider", action="append", default=[], help="only this provider's events (repeatable)")
    tap.add_argument("--user", action="append", default=[], help="only this user's events (repeatable)")
    tap.add_argument("--json", action="store_true", help="one JSON object per line, for tools")
    tap.set_defaults(func=cmd_tap)

    validate = sub.add_parser("validate", help="check a configuration file: exit 0 when it is good, else 1",
                              description="Check every key, type, environment variable and endpoint of a "
                                          "configuration file, as start-up would, and print each problem with its "
                                          "line and key.")
    validate.add_argument("config", type=Path, metavar="CONFIG")
    validate.set_defaults(func=cmd_validate)

    demo = sub.add_parser("demo", help="run the daemon with a scripted sample game and show it working")
    demo.add_argument("--events", type=int, default=5000, help="how many events the sample game sends")
    demo.add_argument("--keep-open", action="store_true",
                      help="keep the daemon, its inspector page and the sandboxes up after the run (Ctrl-C stops)")
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
    parser.add_argument("--ingress", help=f"daemon endpoint (default {DEFAULT_INGRESS}, or the game's)")
    parser.add_argument("--game", help="reach this game's daemon on its own endpoints")


def _endpoints(args: argparse.Namespace) -> tuple[str, str]:
    """(ingress, configs) of the daemon a tool talks to: as given, else the game's, else the classic pair."""
    ingress, publish = default_endpoints(args.game) if args.game else (DEFAULT_INGRESS, DEFAULT_PUBLISH)
    return args.ingress or ingress, getattr(args, "publish", None) or publish


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
    from .game import log_to_file
    from .logs import setup_logging

    settings = load(args.config, sandbox=args.sandbox, data_dir=args.data_dir, store_url=args.store_url,
                    ingress=args.ingress, publish=args.publish, durability=args.durability, log_level=args.log_level,
                    on_corrupt_store=args.on_corrupt_store and args.on_corrupt_store.replace("-", "_"),
                    game=args.game, log_file=args.log_file, parent_pipe=args.parent_pipe or None,
                    parent_pid=args.parent_pid, http=args.http)
    setup_logging(settings)
    if settings.log_file is not None:
        log_to_file(settings.log_file)
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
    with _hello(_endpoints(args)[0]) as client:
        stats = client.request({"type": "stats"})
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    print(format_status(stats))
    return 0


def format_status(stats: dict[str, Any]) -> str:
    """The stats reply as a page a person reads at a glance."""
    store = stats["store"]
    game = f" for game {stats['game']}" if stats.get("game") else ""
    lines = [
        f"engine-bridge {stats['daemon_version']}{game}, up {stats['uptime_s']:.0f} s, {stats['clients']} client(s)",
        f"store      {store['url']}" + (f", this daemon {store['daemon']}" if any(
            "leases" in figures for figures in stats["providers"].values()) else ""),
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
    if stats.get("forwarding"):
        lines.append(f"forwarding NOTHING: {stats['forwarding']}")
    for err in stats["last_errors"]:
        at = time.strftime("%H:%M:%S", time.localtime(err["at"] / 1000))
        lines.append(f"error      {at} {err['code']}: {err['message']}")
    return "\n".join(lines)


def format_provider(name: str, figures: dict[str, Any]) -> list[str]:
    """A provider's delivery figures first, what went wrong loudly, its own figures after."""
    lines = [f"provider   {name}: {figures.pop('queued')} queued, {figures.pop('in_flight')} in flight, "
             f"{figures.pop('delivered')} delivered, {figures.pop('dead_lettered')} dead-lettered"]
    leases = figures.pop("leases", None)
    if leases is not None:  # a fleet on PostgreSQL: which daemon holds how many, and what leases ran out
        held = ", ".join(f"{who} {count}" for who, count in sorted(leases.items())) or "none held"
        lines.append(f"           leases: {held}; {figures.pop('leases_lost')} lost, {figures.pop('taken_over')} "
                     f"taken over, {figures.pop('duplicates')} sent twice")
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
    with _hello(_endpoints(args)[0], args.device_id) as client:
        reply = client.request({"type": "event", "event": event})
    print(json.dumps(reply))
    return 0 if reply["type"] == "ack" and not reply["rejected"] else 1


def cmd_configs(args: argparse.Namespace) -> int:
    if args.once:
        with _hello(_endpoints(args)[0]) as client:
            reply = client.request({"type": "configs", "prefix": args.prefix})
        for publication in reply["topics"].values():
            print(json.dumps(publication, default=str))
        return 0
    sock = subscribe(_endpoints(args)[1], args.prefix)
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


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import BundleError, build, executable, size_bytes

    started = time.monotonic()
    try:
        folder = build(args.out, args.packages)
    except BundleError as exc:
        print(f"engine-bridge bundle: {exc}", file=sys.stderr)
        return 1
    print(f"built {folder} in {time.monotonic() - started:.0f} s: {size_bytes(folder) / 1e6:.1f} MB; the daemon is "
          f"{executable(folder)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.events, args.keep_open)



def cmd_top(args: argparse.Namespace) -> int:
    from .ops import top

    return top.run(args.ingress)


def cmd_tap(args: argparse.Namespace) -> int:
    from .ops import tap

    return tap.run(args.http, args.category, args.provider, args.user, args.json)


def cmd_validate(args: argparse.Namespace) -> int:
    from .ops import validate

    return validate.main(args.config)
