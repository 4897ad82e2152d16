"""``sentinel rules``: manage, test and backtest fraud rules from the command line.

The commands talk to Postgres directly (``--url`` or ``database_url``), through the same store as
the RulesService, so every change is a new version with an audit record and reaches the running
workers within a second. Changing rules will require the admin role once authentication exists.

    sentinel rules names                          what expressions can use
    sentinel rules list [--all]                   current versions
    sentinel rules show RULE [--version N]        one rule as a TOML table (edit it, then `update`)
    sentinel rules add FILE | update FILE         store the [[rule]] tables of a TOML file
    sentinel rules enable|disable|shadow RULE     change the mode (a new version)
    sentinel rules delete RULE                    record the deletion (history is kept)
    sentinel rules history RULE                   every version: who, when, why, what changed
    sentinel rules rollback RULE VERSION          make an earlier version current again
    sentinel rules test (RULE | -e EXPR) TXN.json evaluate on one transaction (stateless features)
    sentinel rules backtest (--csv F | --since D) [--rule R]... [--file F] [--json]
    sentinel rules seed                           store the default rule set into an empty database
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import structlog

from sentinel.config import ConfigError, Settings, load_settings
from sentinel.logs import configure_logging
from sentinel.postgres import run_with_store

_T = TypeVar("_T")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def _url(args: argparse.Namespace) -> str:
    url = getattr(args, "url", None) or _settings(args).database_url
    if not url:
        raise ConfigError("no Postgres to use: pass --url or set database_url (SENTINEL_DATABASE_URL)")
    return url


def _run_with_store(args: argparse.Namespace, action: Callable[[Any], Awaitable[_T]]) -> _T:
    """Run ``action(store)`` against the configured database; friendly errors for the usual failures."""
    from sentinel.server.rules.storage import RuleStore

    url = _url(args)
    return run_with_store(lambda: RuleStore.connect(url), action, "rule")


def _fail(message: str) -> int:
    print(f"sentinel rules: {message}", file=sys.stderr)
    return 1


def _author(args: argparse.Namespace) -> str:
    return args.author or getpass.getuser()


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the store's and the language's errors into one line on stderr and exit code 1."""
    from sentinel.server.rules.definitions import InvalidRule
    from sentinel.server.rules.language import RuleExpressionError
    from sentinel.server.rules.rulefiles import RuleFileError
    from sentinel.server.rules.storage import RuleNotFound, StaleVersion

    def run(args: argparse.Namespace) -> int:
        configure_logging("warning", "console")
        # Warnings go to stderr, looked up per event: `--json` output on stdout stays one JSON object.
        structlog.configure(
            logger_factory=lambda *_: structlog.PrintLogger(sys.stderr), cache_logger_on_first_use=False
        )
        try:
            return handler(args)
        except (RuleExpressionError, InvalidRule, RuleFileError, RuleNotFound, StaleVersion) as exc:
            return _fail(str(exc))

    return run


# --- reading ------------------------------------------------------------------------------------------


def _names(_args: argparse.Namespace) -> int:
    from sentinel.hotpath import FEATURE_DOCS, TRANSACTION_FIELD_DOCS
    from sentinel.server.rules.language import (
        ALWAYS_PRESENT_FIELDS,
        CODE_DOMAINS,
        CONDITION_FEATURES,
        FUNCTIONS,
    )

    print("Transaction fields (may be missing unless marked 'always'):")
    for name, doc in TRANSACTION_FIELD_DOCS.items():
        kind = f"{CODE_DOMAINS[name]} code" if name in CODE_DOMAINS else "number"
        always = ", always" if name in ALWAYS_PRESENT_FIELDS else ""
        print(f"  {name:<22} {kind + always:<22} {doc}")
    print("\nFeatures (never missing):")
    for name, doc in FEATURE_DOCS.items():
        kind = "condition" if name in CONDITION_FEATURES else "number"
        print(f"  {name:<30} {kind:<10} {doc}")
    print("\nFunctions:")
    for doc in FUNCTIONS.values():
        print(f"  {doc}")
    return 0


def _list(args: argparse.Namespace) -> int:
    rules = _run_with_store(args, lambda store: store.current(include_deleted=args.all))
    if not rules:
        print("no rules")
        return 0
    print(f"{'rule':<28} {'ver':>4} {'mode':<8} {'action':<8} {'prio':>4} {'sev':>4}  expression")
    for rule in rules:
        spec = rule.spec
        mode = "deleted" if rule.deleted else spec.mode.value
        expression = " ".join(spec.expression.split())
        print(
            f"{spec.rule_id:<28} {rule.version:>4} {mode:<8} {spec.action.value:<8} {spec.priority:>4} "
            f"{spec.severity:>4.2f}  {expression}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    from sentinel.server.rules.rulefiles import to_toml

    rule = _run_with_store(args, lambda store: store.get(args.rule_id, args.version))
    print(to_toml(rule))
    return 0


def _history(args: argparse.Namespace) -> int:
    entries = _run_with_store(args, lambda store: store.history(args.rule_id))
    for entry in entries:
        restored = f" (copy of v{entry['restored_from']})" if entry["restored_from"] else ""
        state = "deleted" if entry["deleted"] else entry["mode"]
        when = entry["created_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        comment = f": {entry['comment']}" if entry["comment"] else ""
        change = f"{entry['change']:<8}{restored} [{state}]"
        print(f"v{entry['version']:<4} {when}  {change} by {entry['author']}{comment}")
    return 0


# --- changing -----------------------------------------------------------------------------------------


def _store_file(args: argparse.Namespace, must_exist: bool) -> int:
    from sentinel.server.rules.rulefiles import read_rule_file

    specs = read_rule_file(Path(args.file))

    async def store_all(store: Any) -> list[Any]:
        existing = {rule.rule_id: rule for rule in await store.current()}
        for spec in specs:
            if must_exist and spec.rule_id not in existing:
                raise ValueError(f"rule {spec.rule_id!r} does not exist (use `sentinel rules add`)")
            if not must_exist and spec.rule_id in existing:
                raise ValueError(f"rule {spec.rule_id!r} already exists (use `sentinel rules update`)")
        return [await store.put(spec, _author(args), args.comment) for spec in specs]

    try:
        stored = _run_with_store(args, store_all)
    except ValueError as exc:
        return _fail(str(exc))
    for rule in stored:
        print(f"stored {rule.rule_id} v{rule.version}")
    return 0


def _add(args: argparse.Namespace) -> int:
    return _store_file(args, must_exist=False)


def _update(args: argparse.Namespace) -> int:
    return _store_file(args, must_exist=True)


def _set_mode(mode_name: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from sentinel.server.rules.definitions import RuleMode

        mode = RuleMode(mode_name)
        rule = _run_with_store(
            args, lambda store: store.set_mode(args.rule_id, mode, _author(args), args.comment)
        )
        print(f"{rule.rule_id} v{rule.version} is {mode.value}")
        return 0

    return handler


def _delete(args: argparse.Namespace) -> int:
    rule = _run_with_store(args, lambda store: store.delete(args.rule_id, _author(args), args.comment))
    print(f"{rule.rule_id} deleted (v{rule.version})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    rule = _run_with_store(
        args, lambda store: store.rollback(args.rule_id, args.version, _author(args), args.comment)
    )
    print(f"{rule.rule_id} v{rule.version} restores v{args.version}")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from sentinel.server.rules.rulefiles import seed_default_rules

    stored = _run_with_store(args, seed_default_rules)
    print(
        f"seeded {len(stored)} default rules" if stored else "the rule database is not empty: nothing seeded"
    )
    return 0


# --- evaluating ---------------------------------------------------------------------------------------


def _test(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from sentinel.hotpath import FEATURE_NAMES, RuleSet, TransactionColumnsBuilder, build_features_stateless
    from sentinel.hotpath import evaluate_rules as evaluate
    from sentinel.server.errors import InvalidTransaction
    from sentinel.server.rules.compiler import compile_expression
    from sentinel.server.validate import validate_transaction
    from sentinel.server.wire_columns import append_transaction
    from sentinel.v1 import transaction_pb2

    if args.expression is None:
        if args.rule_id is None:
            return _fail("give a rule id or --expression")
        expression = _run_with_store(args, lambda store: store.get(args.rule_id)).spec.expression
    else:
        expression = args.expression
    program = compile_expression(expression)
    try:
        message = json_format.Parse(Path(args.transaction).read_text(), transaction_pb2.Transaction())
        txn = validate_transaction(message, time.time(), 86_400.0)
    except (json_format.ParseError, InvalidTransaction) as exc:
        return _fail(f"{args.transaction}: {exc}")
    builder = TransactionColumnsBuilder(1)
    append_transaction(builder, 0, txn)
    columns = builder.build()
    features = build_features_stateless(columns)
    matched = bool(evaluate(RuleSet([program]), features, columns)[0, 0])
    print(f"{'MATCH' if matched else 'no match'}: {' '.join(expression.split())}")
    print("stateless features (state_known = 0: velocity, travel and novelty take neutral values):")
    for name, value in zip(FEATURE_NAMES, features[0].tolist(), strict=True):
        print(f"  {name:<30} {value:g}")
    return 0 if matched else 3


def _backtest(args: argparse.Namespace) -> int:
    from sentinel.server.rules import backtest
    from sentinel.server.rules.compiler import CompiledRule, build_rule_set, compile_rule
    from sentinel.server.rules.definitions import Rule
    from sentinel.server.rules.rulefiles import read_rule_file

    if (args.csv is None) == (args.since is None):
        return _fail("give exactly one of --csv FILE and --since DATE")
    if args.file:
        now = dt.datetime.now(dt.UTC)
        rules = [Rule(spec, 0, "draft", now) for spec in read_rule_file(Path(args.file))]
    else:
        rules = _run_with_store(args, lambda store: store.current())
    if args.rule:
        missing = sorted(set(args.rule) - {rule.rule_id for rule in rules})
        if missing:
            return _fail(f"no such rule: {', '.join(missing)}")
        rules = [rule for rule in rules if rule.rule_id in args.rule]
    compiled: list[CompiledRule] = [compile_rule(rule) for rule in rules]
    # A rule named with --rule is backtested even when disabled.
    rule_set = build_rule_set(compiled, 0, include_disabled=bool(args.rule))
    started = time.perf_counter()
    if args.csv is not None:
        csv_path = Path(args.csv)
        if not csv_path.is_file():
            return _fail(f"--csv {csv_path}: no such file")
        try:
            transactions = backtest.paysim_transactions(csv_path)
        except ValueError as exc:  # not a PaySim CSV, no rows, a malformed value
            return _fail(str(exc))
    else:
        since = dt.datetime.fromisoformat(args.since)
        since = since if since.tzinfo else since.replace(tzinfo=dt.UTC)
        transactions = asyncio.run(backtest.ledger_transactions(_url(args), since))
    report = backtest.run_backtest(transactions, rule_set, time.perf_counter() - started)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    _print_report(report)
    return 0


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_report(report: Any) -> None:
    labels = "no labels" if report.labelled_frauds is None else f"{report.labelled_frauds} labelled frauds"
    print(f"{report.source}: {report.transactions} transactions ({labels})")
    print(
        f"replayed in {report.seconds:.3f} s = {report.tps:,.0f} transactions/s (reading took "
        f"{report.load_seconds:.3f} s)"
    )
    print(f"\n{'rule':<28} {'mode':<8} {'hits':>8} {'precision':>9} {'recall':>7}")
    for result in [*report.rules, report.any_active]:
        print(
            f"{result.rule_id:<28} {result.mode:<8} {result.hits:>8} {_ratio(result.precision):>9} "
            f"{_ratio(result.recall):>7}"
        )
    for result in report.rules:
        if result.sample_hits:
            print(f"\nsample hits of {result.rule_id}:")
            for sample in result.sample_hits:
                fraud = "" if sample["fraud"] is None else ("  FRAUD" if sample["fraud"] else "  not fraud")
                print(
                    f"  row {sample['row']:>8}  {sample['id']:<16} amount {sample['amount']:>14,.2f}{fraud}"
                )


# --- registration -------------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``sentinel rules``."""
    parser = subparsers.add_parser(
        "rules", help="manage, test and backtest fraud rules", description=__doc__.split("\n\n")[0]
    )
    actions = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)

    def action(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--url", help="Postgres URL (default: database_url)")
        sub.set_defaults(handler=_guarded(handler))
        return sub

    def change_flags(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--author", help="who makes the change (default: the login name)")
        sub.add_argument("--comment", default="", help="why (kept in the rule's history)")

    action("names", _names, "list the features, fields and functions expressions can use")
    sub = action("list", _list, "list the current version of every rule")
    sub.add_argument("--all", action="store_true", help="include deleted rules")
    sub = action("show", _show, "print a rule as a TOML [[rule]] table")
    sub.add_argument("rule_id")
    sub.add_argument("--version", type=int, default=0, help="an earlier version (default: current)")
    for name, handler, text in (
        ("add", _add, "store new rules from a TOML file of [[rule]] tables"),
        ("update", _update, "store new versions of existing rules from a TOML file"),
    ):
        sub = action(name, handler, text)
        sub.add_argument("file")
        change_flags(sub)
    for mode, verb in (("active", "enable"), ("disabled", "disable"), ("shadow", "shadow")):
        sub = action(verb, _set_mode(mode), f"set a rule's mode to {mode} (a new version)")
        sub.add_argument("rule_id")
        change_flags(sub)
    sub = action("delete", _delete, "delete a rule (recorded as a new version; history is kept)")
    sub.add_argument("rule_id")
    change_flags(sub)
    sub = action("history", _history, "every version of a rule: who, when, why, what changed")
    sub.add_argument("rule_id")
    sub = action("rollback", _rollback, "make an earlier version current again (as a new version)")
    sub.add_argument("rule_id")
    sub.add_argument("version", type=int)
    change_flags(sub)
    sub = action("test", _test, "evaluate a rule on one transaction (JSON of sentinel.v1.Transaction)")
    sub.add_argument("rule_id", nargs="?", help="a stored rule (or use --expression)")
    sub.add_argument("transaction", help="file with the transaction in protobuf JSON")
    sub.add_argument("-e", "--expression", help="a draft expression instead of a stored rule")
    sub = action("backtest", _backtest, "replay past transactions through the rules; hits, precision, recall")
    sub.add_argument("--csv", help="a PaySim CSV (labels from isFraud)")
    sub.add_argument("--since", help="ledger transactions recorded since this ISO date/time (UTC if no zone)")
    sub.add_argument("--rule", action="append", help="only this rule (repeatable; disabled rules allowed)")
    sub.add_argument("--file", help="rules from this TOML file instead of the database")
    sub.add_argument("--json", action="store_true", help="print one JSON object")
    action("seed", _seed, "store the default rule set if the rule database has never held a rule")
