"""Rules that fraud analysts write: language, compiler, versioned storage, hot reload, RPC, CLI, backtest.

Entry points for the server (docs/decisions/0007-rules-language-and-storage.md explains the design):

- ``storage.RuleStore.connect(dsn)``: the store (tables from the ledger's migrations);
  ``RuleStore.load_rule_set()`` returns the current ``compiler.CompiledRuleSet``.
- ``rulefiles.seed_default_rules(store)``: store the default rule set into a database that never
  held a rule (safe to call from every worker at start-up).
- ``reload.RuleSetWatcher.start(store, dsn, poll_interval_s=...)``: per worker; ``.current`` is the
  rule set to evaluate, swapped within a second of any change (LISTEN/NOTIFY plus polling).
- ``service.RulesServicer(store, max_clock_skew_s=..., state_provider=...)``: sentinel.v1.RulesService.

The package itself imports nothing, so ``sentinel --help`` does not load the rule machinery.
"""
