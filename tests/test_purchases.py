"""The purchase lane against the staq sandbox: what a game grants (valid and not a duplicate) must come exactly
once per purchase, whatever staq's answers, our time-outs and crashes do; one purchase never holds up another.

The purchase lane and the staq provider run in-process (tests/providers/inprocess.py); the crash test needs
the daemon process (kill -9)."""

from __future__ import annotations

import base64
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from bridge.client import recv_publication, subscribe
from bridge.sandbox.staq import StaqSandbox
from tests.harness import Client
from tests.providers.test_staq import HELLO, in_process, purchase, staq_daemon
from tests.sandboxes import wait_until


def valid_receipt(sb: StaqSandbox) -> str:
    receipt = base64.b64encode(uuid.uuid4().bytes).decode()
    sb.register_receipt(receipt, valid=True)
    return receipt


def rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as db:
        return db.execute(sql).fetchall()


def granted(reply: dict[str, Any] | None) -> bool:
    """What every binding grants on (None: no verdict in the time the ingress holds the reply)."""
    return reply is not None and reply["is_valid"] is True and reply["is_duplicate"] is False


@pytest.mark.parametrize("spelling", ["isDuplicated", "isDuplicate"])  # the document's examples, its field list
def test_a_receipt_replayed_under_a_new_purchase_id_is_a_duplicate_in_either_spelling(tmp_path: Path, staq_sandbox,
                                                                                      spelling: str) -> None:
    sb, server = staq_sandbox
    sb.configure(duplicate_field=spelling)  # type: ignore[arg-type]
    receipt = valid_receipt(sb)
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        first = game.buy(purchase(receipt=receipt))
        replay = game.buy(purchase(receipt=receipt))
    assert granted(first)
    assert replay is not None and (replay["is_valid"], replay["is_duplicate"]) == (True, True)


def test_a_paid_purchase_whose_answer_came_after_our_timeout_is_granted_once(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    receipt = valid_receipt(sb)
    sb.faults.slow("iap_apple", delay_s=1.0)  # staq verifies and spends it, but answers after our 0.5 s
    # the retry waits 1 to 2 s after our time-out: staq has spent the receipt by then
    h = in_process(tmp_path, server.url, timeout=0.5, retry_base=2.0, retry_cap=2.0)
    game = h.hello(**HELLO)
    with h:
        paid = game.buy(purchase(receipt=receipt))
        replay = game.buy(purchase(receipt=receipt))  # the same receipt as another purchase: not ours to grant
    assert [(p["isValid"], p["isDuplicate"]) for p in sb.purchases()[:2]] == [(True, False), (True, True)]
    assert paid is not None and granted(paid) and "earlier request" in paid["reason"]
    assert replay is not None and replay["is_duplicate"] is True


def test_one_purchase_staq_keeps_failing_never_holds_up_another(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    sb.faults.fail("iap_googleplay", status=503, count=None)  # every Google Play verification fails
    h = in_process(tmp_path, server.url, retry_base=0.2, retry_cap=0.4)
    game = h.hello(**HELLO)
    with h:
        stuck = purchase("googleplay", signature=base64.b64encode(b"sig").decode())
        game.purchase(stuck)
        wait_until(lambda: rows(h.db_path, "SELECT failures FROM purchases WHERE failures >= 2"),
                   what="the first purchase failing again and again")
        later = game.buy(purchase(receipt=valid_receipt(sb)))
        [(failures, next_try_at, verified_at)] = rows(
            h.db_path, f"SELECT failures, next_try_at, verified_at FROM purchases WHERE purchase_id = '{stuck['id']}'")
    assert granted(later)
    assert failures >= 2 and next_try_at is not None and verified_at is None  # still retried, on its own backoff


@pytest.mark.parametrize("status,body", [
    (404, '{"error": "user not found"}'),
    (400, '{"error": "unknown sid"}'),
    (422, '{"error": "Auth-Token expired"}'),
])
def test_an_answer_about_our_session_authorizes_again_and_is_never_a_verdict(tmp_path: Path, staq_sandbox, status: int,
                                                                             body: str) -> None:
    sb, server = staq_sandbox
    sb.faults.fail("iap_apple", status=status, count=1, body=body)
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        reply = game.buy(purchase(receipt=valid_receipt(sb)))
    assert granted(reply)
    assert len(sb.calls("auth")) == 2  # authorized again before asking once more


def test_a_refusal_that_names_neither_us_nor_the_receipt_is_retried_not_a_verdict(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    sb.faults.fail("iap_apple", status=400, count=2, body='{"error": "temporarily unable to process"}')
    h = in_process(tmp_path, server.url)
    game = h.hello(**HELLO)
    with h:
        reply = game.buy(purchase(receipt=valid_receipt(sb)))
    assert granted(reply)
    assert sb.faults.fired()["iap_apple"] == 2


# --- daemon level: kill -9 ------------------------------------------------------------------------------

def test_a_crash_after_staq_spent_the_receipt_still_grants_the_purchase(tmp_path: Path, staq_sandbox) -> None:
    sb, server = staq_sandbox
    receipt = valid_receipt(sb)
    sb.faults.slow("iap_apple", delay_s=2.0)
    daemon = staq_daemon(tmp_path, server.url, timeout=5.0).start()
    with Client(daemon.ingress, device_id="crasher") as c:
        c.hello(**HELLO)
        msg = purchase(receipt=receipt)
        c.send(msg)
        wait_until(lambda: rows(daemon.db_path, "SELECT sent_at FROM purchases WHERE sent_at IS NOT NULL"),
                   what="the verification marked in flight")
        # the request has reached staq (its slow answer began), not merely been marked as about to go
        wait_until(lambda: sb.counts()["faults_fired"].get("iap_apple"), what="the verification at staq")
    daemon.kill()  # before staq's answer: staq still spends the receipt, and nobody saves the verdict
    wait_until(lambda: sb.purchases(), what="staq spending the receipt")
    daemon.start()
    sub = subscribe(daemon.publish, "purchase/crasher")
    try:
        topic = wait_until(lambda: recv_publication(sub, 100), 15, what="the verdict after the restart")
    finally:
        sub.close(0)
        daemon.stop()
    verdict = topic["values"][msg["id"]]
    assert verdict["is_valid"] is True and verdict["is_duplicate"] is False
    assert [p["isDuplicate"] for p in sb.purchases()] == [False, True]
