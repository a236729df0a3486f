"""aiomt5: an asyncio client for MetaTrader 5."""
