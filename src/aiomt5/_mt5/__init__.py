"""MT5 definitions: the one source of what the ``MetaTrader5`` package defines.

``constants`` (all 223 constants), ``enums`` (their families as ``IntEnum``), ``codes``
(``last_error()`` texts), ``functions`` (the module's function names), ``structs`` (the 11
struct-sequence types) and ``dtypes`` (the packed array rows). The simulator, the backends, the
remote transport, trading and the public ``aiomt5.constants`` import them from here, so each value
is written once. The modules are imported directly (``structs`` and ``dtypes`` need numpy;
``constants`` and ``enums`` stay light).
"""
