"""Market data on top of the connector: history paging, frames, live streams, the store, checks.

Everything here calls the terminal through the connector's public and session API, never
through the worker or the backend directly.
"""
