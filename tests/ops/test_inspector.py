"""The inspector page in a real headless Chromium (Debian's chromium and chromium-driver, through Selenium),
served by a real daemon delivering to a GameAnalytics sandbox: an invalid event shows the rule it breaks, a
dead letter is re-queued from the page and delivered, a config change appears without a reload. The README's
screenshot is taken here: into docs/inspector.png with ENGINE_BRIDGE_SCREENSHOT=1 set (so that a test run leaves
the checkout as it found it), else into the test's own folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bridge.sandbox.faults import Fault
from tests.harness import REPO, make_event
from tests.ops.conftest import OpsDaemon
from tests.sandboxes import settled, wait_until

README_SCREENSHOT = REPO / "docs" / "inspector.png"
REFUSED = "rejected: 400 with a body that is not the collector's list"  # GameAnalytics' reading of the fault
WAIT_S = 20


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium driven through its own chromedriver: nothing is downloaded (Selenium Manager is not
    asked), and the page can fetch only from the daemon."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "chromium and chromium-driver are missing: run scripts/install-system-deps.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def until(browser: WebDriver, what: str, condition: Any) -> Any:
    """Wait for `condition`; an element the page redrew meanwhile (it redraws as the feed speaks) is read again."""
    return WebDriverWait(browser, WAIT_S, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(lambda d: condition(), message=what)


def clicked(element: Any) -> bool:
    element.click()
    return True


def event_row(browser: WebDriver, name: str) -> Any:
    rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
            if r.find_element(By.CSS_SELECTOR, "td.name").text == name]
    return rows[0] if rows else None


def verdict(browser: WebDriver, name: str, provider: str = "gameanalytics") -> str:
    row = event_row(browser, name)
    if row is None:
        return ""
    spans = row.find_elements(By.CSS_SELECTOR, f'.verdict[data-provider="{provider}"]')
    return spans[0].text if spans else ""


def dead_letter_rows(browser: WebDriver) -> list[Any]:
    return browser.find_elements(By.CSS_SELECTOR, "#dead-letters tbody tr")


def config_cells(browser: WebDriver, topic: str) -> tuple[str, str]:
    rows = browser.find_elements(By.CSS_SELECTOR, f'#configs tbody tr[data-topic="{topic}"]')
    if not rows:
        return "", ""
    return (rows[0].find_element(By.CSS_SELECTOR, "td.version").text,
            rows[0].find_element(By.CSS_SELECTOR, "td.values").text)


def test_the_inspector_shows_verdicts_requeues_dead_letters_and_configs_live(ops_daemon: OpsDaemon,
                                                                            browser: webdriver.Chrome,
                                                                            tmp_path: Path) -> None:
    browser.get(ops_daemon.url)
    until(browser, "the feed connected", lambda: browser.find_element(By.ID, "link").text == "live")
    assert browser.find_element(By.ID, "health").text == "health ok"
    assert config_cells(browser, "config/local") == ("1", '{"difficulty":"normal"}')
    browser.execute_script("window.sameDocument = 'yes'")  # gone if the page reloads

    with ops_daemon.game("dev-inspector") as game:
        # a few good events, then one GameAnalytics refuses by its own rules: its rule is on the page at once
        game.request({"type": "events", "events": [make_event("progression"), make_event("business"),
                                                   make_event("resource"), make_event("design")]})
        game.request({"type": "event", "event": make_event("design", event_id="level:done!!$")})
        until(browser, "the invalid event's rule", lambda: "must match" in verdict(browser, "level:done!!$"))
        assert "event_id: part 'done!!$' must match" in until(browser, "the rule", lambda: verdict(
            browser, "level:done!!$"))
        until(browser, "a good event accepted", lambda: verdict(browser, "ui:click:play") == "gameanalytics: accepted")
        until(browser, "the event's fields shown", lambda: clicked(event_row(browser, "level:done!!$")) and
              '"event_id": "level:done!!$"' in browser.find_element(By.ID, "fields").text)

        # the collector refuses the next request: a dead letter with its reason, re-queued from the page
        ops_daemon.sandbox.faults.add(Fault("status", "events", count=1, status=400,
                                            body='{"error": "collector refused the batch"}'))
        game.request({"type": "event", "event": make_event("design", event_id="shop:requeue_me")})
        until(browser, "the dead letter listed", lambda: any(
            REFUSED in r.text for r in dead_letter_rows(browser)))
        assert "dead-lettered" in until(browser, "its verdict", lambda: verdict(browser, "shop:requeue_me"))
        until(browser, "requeue clicked", lambda: clicked(next(
            r for r in dead_letter_rows(browser) if REFUSED in r.text
        ).find_element(By.CSS_SELECTOR, "button.requeue")))
        wait_until(lambda: any(e.get("event_id") == "shop:requeue_me" for e in ops_daemon.sandbox.accepted_events()),
                   what="the re-queued event delivered")
        until(browser, "the dead letter gone from the page", lambda: not any(
            REFUSED in r.text for r in dead_letter_rows(browser)))
        assert until(browser, "the invalid event's dead letter", lambda: [
            r.text for r in dead_letter_rows(browser) if "must match" in r.text])
        stats = wait_until(lambda: settled(game, "gameanalytics"), what="everything settled")
        assert stats["dead_lettered"] == 1  # the invalid event stays until the game fixes it

    # a config change reaches the page while it stays open
    path = ops_daemon.daemon.config_path
    path.write_text(path.read_text().replace('difficulty = "normal"', 'difficulty = "hard"'))
    until(browser, "the new config/local", lambda: config_cells(browser, "config/local") ==
          ("2", '{"difficulty":"hard"}'))
    assert browser.execute_script("return window.sameDocument") == "yes"

    until(browser, "the invalid event chosen", lambda: clicked(event_row(browser, "level:done!!$")))
    browser.execute_script("window.scrollTo(0, 0)")
    shot = README_SCREENSHOT if os.environ.get("ENGINE_BRIDGE_SCREENSHOT") == "1" else tmp_path / "inspector.png"
    shot.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]  # type: ignore[no-untyped-call]
