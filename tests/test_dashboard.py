"""The ops dashboard without a browser: its figures (rates, quantiles, drift), the one-entry chain check it
shows, and its authentication with auth_mode = jwt (in-process aiohttp server, real tokens and keys)."""

from __future__ import annotations

import math
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from ledger_helpers import ledger_settings, make_record
from prometheus_client import CollectorRegistry

from sentinel import cli
from sentinel.config import load_settings
from sentinel.ledger import LedgerWriter
from sentinel.ledger.migrate import migrate
from sentinel.ledger.verify import take_checkpoint, verify_entry_chain
from sentinel.server.dashboard.figures import (
    Snapshot,
    histogram_quantiles,
    population_stability,
    quantile,
    rates,
)
from sentinel.server.dashboard.http import build_app
from sentinel.server.token_commands import issue_token

ISSUER, AUDIENCE, KID = "https://issuer.dashboard.test", "sentinel", "d1"


def snapshot(at: float, **samples: float) -> Snapshot:
    """Samples given as name__label=value pairs: ``calls_total__code_OK=3``."""
    parsed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for key, value in samples.items():
        name, *labels = key.split("__")
        pairs = [label.split("_", 1) for label in labels]
        parsed[(name, tuple(sorted((label, shown) for label, shown in pairs)))] = value
    return Snapshot(at, parsed)


def test_rates_are_increases_per_second_and_never_negative() -> None:
    before = snapshot(10.0, calls_total__code_OK=100, calls_total__code_UNAVAILABLE=7)
    now = snapshot(12.0, calls_total__code_OK=150, calls_total__code_UNAVAILABLE=5)  # a file went away
    assert rates(now, before, "calls_total", "code") == {("OK",): 25.0, ("UNAVAILABLE",): 0.0}
    assert rates(now, before, "calls_total") == {(): 25.0}


def test_quantiles_interpolate_like_prometheus() -> None:
    cumulative = [(0.001, 50.0), (0.01, 90.0), (0.1, 100.0), (math.inf, 100.0)]
    assert quantile(0.5, cumulative) == pytest.approx(0.001)
    assert quantile(0.7, cumulative) == pytest.approx(0.001 + 0.009 * 20 / 40)
    assert quantile(0.99, cumulative) == pytest.approx(0.01 + 0.09 * 9 / 10)
    assert quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert quantile(0.99, [(0.1, 1.0), (math.inf, 10.0)]) == 0.1  # in +Inf: the highest finite bound


def test_stage_quantiles_come_from_what_was_observed_between_the_snapshots() -> None:
    before = snapshot(
        0.0, **{"s_bucket__stage_ledger__le_0.01": 1000, "s_bucket__stage_ledger__le_+Inf": 1000}
    )
    now = snapshot(10.0, **{"s_bucket__stage_ledger__le_0.01": 1000, "s_bucket__stage_ledger__le_+Inf": 1010})
    figures = histogram_quantiles(now, before, "s", "stage", (0.5,))
    assert figures == {"ledger": {"p50": 0.01, "count": 10.0}}  # all ten new ones were slow


def test_drift_is_zero_for_the_same_distribution_and_grows_with_the_shift() -> None:
    reference = [0.7, 0.2, 0.1, 0.0]
    assert population_stability(reference, reference) == 0.0
    small = population_stability([0.65, 0.25, 0.1, 0.0], reference)
    large = population_stability([0.2, 0.2, 0.2, 0.4], reference)
    assert 0 < small < 0.1 < 0.25 < large


async def test_the_entry_check_finds_a_changed_entry_before_it(database_url: str, tmp_path: Path) -> None:
    settings = ledger_settings(database_url, tmp_path, ledger_writer_connections=1)  # one chain
    writer = LedgerWriter(settings, name="dashboard")
    await writer.start()
    try:
        acks = await writer.submit([make_record(f"tx-{i}") for i in range(4)])
        await take_checkpoint(database_url)
        acks += await writer.submit([make_record(f"tx-{i}") for i in range(4, 6)])
    finally:
        await writer.close()
    connection = await asyncpg.connect(database_url)
    try:
        rows = {
            row["transaction_id"]: row
            for row in await connection.fetch(
                "SELECT transaction_id, sequence, recorded_at FROM ledger.decisions"
            )
        }
        last = rows["tx-5"]
        check = await verify_entry_chain(connection, last["sequence"], last["recorded_at"])
        assert check is not None and check.ok and check.anchor.startswith("checkpoint")
        assert check.entries == 2  # from the checkpointed head on, not from the chain's start
        first = rows["tx-1"]
        from_start = await verify_entry_chain(connection, first["sequence"], first["recorded_at"])
        assert from_start is not None and from_start.ok and from_start.anchor == "chain start"

        await connection.execute("SET session_replication_role = replica")  # the superuser forges tx-4
        await connection.execute(
            "UPDATE ledger.decisions SET risk_score = 0.01 WHERE transaction_id = 'tx-4'"
        )
        check = await verify_entry_chain(connection, last["sequence"], last["recorded_at"])
        assert check is not None and not check.ok
        assert check.broken is not None and check.broken.transaction_id == "tx-4"
        assert await verify_entry_chain(connection, 10**12, last["recorded_at"]) is None
    finally:
        await connection.close()


async def test_with_jwt_the_data_needs_the_ops_viewer_role(
    tmp_path: Path, redis_url: str, database_url: str
) -> None:
    assert cli.main(["token", "keygen", "--out", str(tmp_path), "--kid", KID]) == 0
    await migrate(database_url)
    settings = load_settings(
        redis_url=redis_url,
        database_url=database_url,
        data_dir=tmp_path / "data",
        auth_mode="jwt",
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_file=tmp_path / "jwks.json",
    )
    key = serialization.load_pem_private_key((tmp_path / f"{KID}.private.pem").read_bytes(), None)

    def token(*roles: str) -> dict[str, str]:
        signed = issue_token(
            subject="ops",
            roles=list(roles),
            ttl_s=300,
            issuer=ISSUER,
            audience=AUDIENCE,
            key=key,
            algorithm="RS256",
            kid=KID,
        )
        return {"Authorization": f"Bearer {signed}"}

    async with TestClient(TestServer(build_app(settings, CollectorRegistry()))) as client:
        for path in ("/metrics", "/dashboard/", "/dashboard/static/dashboard.js"):
            assert (await client.get(path)).status == 200, path  # no data in them: public
        page = await client.get("/dashboard/")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        for path in ("/dashboard/api/figures", "/dashboard/api/decisions/tx-1"):
            refused = await client.get(path)
            assert refused.status == 401 and (await refused.json()) == {"error": "missing bearer token"}
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            wrong_role = await client.get(path, headers=token("scorer"))
            assert wrong_role.status == 403
            assert "ops-viewer" in (await wrong_role.json())["error"]
        bad = await client.get("/dashboard/api/figures", headers={"Authorization": "Bearer not.a.token"})
        assert bad.status == 401 and (await bad.json()) == {"error": "malformed token"}
        figures = await client.get("/dashboard/api/figures", headers=token("ops-viewer"))
        assert figures.status == 200
        body = await figures.json()
        assert body["health"]["redis"]["up"] and body["outbox_lag_s"] is None
        missing = await client.get("/dashboard/api/decisions/tx-none", headers=token("ops-viewer"))
        assert missing.status == 404
        invalid = await client.get("/dashboard/api/decisions/bad%20id", headers=token("ops-viewer"))
        assert invalid.status == 400
