"""The built-in simulated MetaTrader 5 terminal (filled in by the simulator modules)."""
