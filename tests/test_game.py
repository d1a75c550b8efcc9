"""A game's identity: its own endpoints, data directory and log; a daemon of one game refuses another's hello."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from bridge import game
from bridge.logs import RedactSecrets
from tests.harness import Client, Daemon, make_event


def test_fnv1a_is_the_published_32_bit_hash() -> None:
    # Vectors of the FNV reference (the empty string is the offset basis).
    assert game.fnv1a("") == 0x811C9DC5
    assert game.fnv1a("a") == 0xE40C292C
    assert game.fnv1a("foobar") == 0xBF9CF968


def test_each_game_has_its_own_loopback_pair_below_the_dynamic_range() -> None:
    ports = {game.game_port(f"game-{n}") for n in range(200)}
    assert len(ports) > 190  # collisions are rare
    assert all(40000 <= p and p + 1 < 49152 and p % 2 == 0 for p in ports)
    assert game.default_endpoints("space-duel", unix_sockets=False) == ("tcp://127.0.0.1:42812",
                                                                        "tcp://127.0.0.1:42813")


def test_posix_endpoints_live_in_the_users_runtime_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert game.default_endpoints("space-duel", unix_sockets=True) == (
        f"ipc://{tmp_path}/engine-bridge/space-duel/ingress", f"ipc://{tmp_path}/engine-bridge/space-duel/configs")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert game.runtime_dir().name.startswith("engine-bridge-")  # the user's own folder in /tmp


@pytest.mark.parametrize("bad", ["", "Space", "a b", "-x", "x" * 33, "späce"])
def test_a_game_id_is_short_and_plain(bad: str) -> None:
    with pytest.raises(ValueError, match="must be 1-32 characters"):
        game.check_game(bad)


def test_ipc_folders_are_private_and_a_live_socket_is_not_taken_over(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/run/engine-bridge/g/ingress"
    game.prepare_ipc(endpoint)
    for folder in (tmp_path / "run", tmp_path / "run" / "engine-bridge", tmp_path / "run" / "engine-bridge" / "g"):
        assert folder.stat().st_mode & 0o777 == 0o700
    path = tmp_path / "run" / "engine-bridge" / "g" / "ingress"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(game.EndpointInUse, match="another process listens"):
            game.prepare_ipc(endpoint)
    game.prepare_ipc(endpoint)  # the file a dead daemon left: libzmq binds over it


def test_the_log_file_masks_secrets_as_the_console_does(tmp_path: Path) -> None:
    root = logging.getLogger()
    console = logging.StreamHandler()
    console.addFilter(RedactSecrets(["s3cret-value"]))
    root.addHandler(console)
    before = list(root.handlers)
    try:
        root.handlers[:] = [console]
        game.log_to_file(tmp_path / "logs" / "engine-bridge.log")
        logging.getLogger("bridge.test").warning("key is %s", "s3cret-value")
    finally:
        for handler in root.handlers[1:]:
            handler.close()
        root.handlers[:] = [h for h in before if h is not console]
    assert (tmp_path / "logs" / "engine-bridge.log").read_text().endswith("key is ***\n")


def test_two_games_each_with_its_own_daemon_and_neither_hears_the_other(tmp_path: Path) -> None:
    """Two games' daemons side by side on their own endpoints: a hello naming the other game is refused with
    wrong_game (nothing stored there), one naming none is still served, and each store holds its game's events."""
    a = Daemon(tmp_path / "a", extra_args=["--game", "space-duel"])
    b = Daemon(tmp_path / "b", extra_args=["--game", "moon-golf"])
    with a, b:
        with Client(b.ingress, device_id="duel-1") as wrong:
            refused = wrong.hello(game="space-duel")
            assert refused["code"] == "wrong_game" and refused["detail"] == {"game": "moon-golf"}
            assert wrong.request({"type": "event", "event": _event("duel:stray")})["code"] == "hello_required"
        for daemon, name in ((a, "space-duel"), (b, "moon-golf")):
            with Client(daemon.ingress, device_id=f"{name}-1") as right:
                welcome = right.hello(game=name)
                assert (welcome["type"], welcome["game"]) == ("welcome", name)
                assert "forwarded nowhere" in welcome["forwarding"]
                assert right.request({"type": "event", "event": _event(f"{name}:start")})["stored"] == 1
        with Client(a.ingress, device_id="old-client") as legacy:  # a client from before game ids
            assert legacy.hello()["game"] == "space-duel"
        assert [e["fields"]["event_id"] for e in a.events() if e["category"] == "design"] == ["space-duel:start"]
        assert [e["fields"]["event_id"] for e in b.events() if e["category"] == "design"] == ["moon-golf:start"]
        assert "ready for game space-duel" in a.log()


def _event(event_id: str) -> dict[str, object]:
    return make_event("design", event_id=event_id)
