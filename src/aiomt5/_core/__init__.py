"""The core: where a call goes and where failures are decided.

* ``_worker``: the one thread that ever calls the backend (FIFO, timeouts, late results);
* ``_supervisor``: the one task that owns the worker's lifecycle (connect, health, reconnect);
* ``_stats``: counters and latencies; ``_events``: what the core tells the user;
* ``_errors``: the exception tree; ``_types``: states and the ``USE_DEFAULT`` sentinel;
* ``_backoff``, ``_log``, ``_arguments``: small shared pieces (retry delays, logging,
  argument checks).

Nothing here knows MetaTrader5's failure conventions: that is the backend layer's job.
"""
