"""Every ``MetaTrader5`` constant by its MT5 name, with the official value, on every platform.

```python
from aiomt5.constants import ORDER_TYPE_BUY_LIMIT, TRADE_RETCODE_DONE
```

Plain ints, exactly as ``MetaTrader5`` (5.0.6231) defines them, so code written for the
``MetaTrader5`` package runs unchanged where that package does not exist (Linux, macOS, CI).
``CONSTANTS`` maps each name to its value. For code that branches on a family, the same values
come as ``IntEnum`` members from ``aiomt5`` (``aiomt5.OrderType.BUY_LIMIT == 2``).
"""

from __future__ import annotations

from ._mt5.constants import *  # noqa: F403 (every constant; the list is _mt5.constants.__all__)
from ._mt5.constants import CONSTANTS as CONSTANTS
from ._mt5.constants import __all__ as __all__
