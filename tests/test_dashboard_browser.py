"""The ops dashboard in headless Chromium (Debian's, driven by Playwright) against a live server under load.

One server (one worker) serves the packaged default model, whose metadata holds its validation score
distribution; a thread scores transactions throughout. The page must show figures that change from one
update to the next, a drift figure, healthy Redis and Postgres, and the decision page must find a scored
transaction and say that its hash chain verifies; the browser must log no error (the pages run under a
strict Content-Security-Policy, so a violation would be one). The screenshot the README shows,
docs/images/dashboard.png, is written here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from server_helpers import ROOT, new_database, stubs, transaction

from sentinel.localservices import LocalPostgres, LocalRedis
from sentinel.serverprocess import ServerProcess
from sentinel.v1 import scoring_pb2

if TYPE_CHECKING:
    from playwright.sync_api import Page

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "docs" / "images" / "dashboard.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (make test-system-packages)"),
]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: LocalRedis, postgres_server: LocalPostgres
) -> Iterator[ServerProcess]:
    with ServerProcess(
        tmp_path_factory.mktemp("dashboard-server"),
        workers=1,
        redis_url=redis_server.url,
        database_url=new_database(postgres_server, f"dashboard_{os.getpid()}"),
        dashboard_update_ms=200,
        dashboard_score_window_s=60,
    ) as process:
        yield process


class Load:
    """Score calls from a thread until stopped (a few hundred transactions a second), keeping the ids."""

    def __init__(self, address: str) -> None:
        (self._stub,) = stubs(address, 1)
        self.scored: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            transaction_id = f"dash-{os.getpid()}-{number}"
            amount = f"{10 + (number * 7919) % 90000}.00"  # a spread of amounts: a spread of scores
            try:
                self._stub.Score(
                    scoring_pb2.ScoreRequest(
                        transaction=transaction(transaction_id, account=f"C{number % 50}", amount=amount)
                    ),
                    timeout=5,
                )
            except grpc.RpcError as exc:
                self.failures.append(f"{exc.code()}: {exc.details()}")
            else:
                self.scored.append(transaction_id)
            time.sleep(0.002)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture()
def browser_page(tmp_path: Path) -> Iterator[tuple[Page, list[str]]]:
    """A page of a fresh headless Chromium profile, and the errors it logs."""
    with playwright.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1300},
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page, errors
        finally:
            context.close()


def number(shown: str) -> float:
    return float("nan") if shown == "n/a" else float(shown.replace(",", ""))


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll ``condition`` (the page's CSP forbids the string predicates of Playwright's wait_for_function)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.1)


def tile(page: Page, name: str) -> str:
    return page.get_by_test_id(name).inner_text()


def test_live_figures_and_decision_lookup(
    server: ServerProcess, browser_page: tuple[Page, list[str]]
) -> None:
    page, errors = browser_page
    base = f"http://127.0.0.1:{server.metrics_port}/dashboard/"
    with Load(server.address) as load:
        page.goto(base)
        wait_for(lambda: number(tile(page, "decisions-total")) > 200, "200 decisions shown")
        first = tile(page, "decisions-total")
        points = page.evaluate("Chart.getChart('chart-outcomes').data.labels.length")
        page.wait_for_timeout(1_500)
        assert tile(page, "decisions-total") != first  # the figures move with the load
        assert page.evaluate("Chart.getChart('chart-outcomes').data.labels.length") > points
        assert number(tile(page, "tps")) > 0
        assert tile(page, "status").startswith("live")
        assert tile(page, "redis").startswith("up") and tile(page, "postgres").startswith("up")
        assert " / " in tile(page, "ledger-commit") and "ms" in tile(page, "ledger-commit")
        assert tile(page, "drift") != "n/a"  # the packaged model carries its score distribution
        assert tile(page, "outbox-lag") == "n/a" or tile(page, "outbox-lag").endswith(" s")
        assert "Score" in tile(page, "calls-table") and "OK" in tile(page, "calls-table")
        stage_bars = page.evaluate("Chart.getChart('chart-stages').data.labels")
        assert {"ledger", "model", "state"} <= set(stage_bars)
        live_scores = page.evaluate("Chart.getChart('chart-scores').data.datasets.map(d => d.label)")
        assert live_scores == ["live", "training"]
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        scored = load.scored[len(load.scored) // 2]
    assert not load.failures, load.failures[:3]

    page.goto(f"{base}decision?id={scored}")
    page.get_by_test_id("chain").filter(has_text="verifies").wait_for(timeout=10_000)
    assert tile(page, "outcome") in {"APPROVE", "REVIEW", "DECLINE"}
    assert 0.0 <= float(tile(page, "model-score")) <= 1.0
    assert scored in tile(page, "transaction")
    assert "sequence" in tile(page, "entry")

    page.get_by_test_id("transaction-id").fill("never-scored")
    page.get_by_test_id("look-up").click()
    page.get_by_test_id("lookup-error").filter(has_text="no decision is recorded").wait_for(timeout=5_000)
    # The 404 of that lookup is the only error the browser may log (Chromium reports failed requests).
    assert [error for error in errors if "404" not in error] == []
