"""Rules that fraud analysts write: language, compiler, versioned storage, hot reload, RPC, CLI, backtest."""
