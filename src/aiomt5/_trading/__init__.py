"""Trading on top of the connector: request models, the ``Trader`` (orders, reads, late-result
capture, reconciliation) and the connector's trading methods (``_api``)."""
