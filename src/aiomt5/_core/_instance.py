"""The process-wide connector behind ``get_instance()``, shared by the async and blocking APIs.

MetaTrader5 is one module-level session per process: two live connectors in one process would
share it, and one's ``shutdown()`` would end the other's. So ``AsyncMT5Connector.get_instance()``
and ``MT5Connector.get_instance()`` draw from one slot: whichever kind is live is *the* connector,
and asking for the other kind (or for other settings) while it lives is a configuration error
that says what to do, never a second session.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ._errors import MT5ConfigurationError
from ._types import ConnectionState

if TYPE_CHECKING:
    from aiomt5._settings import MT5Settings

__all__ = ["ProcessInstance", "process_instance"]


class _Connector(Protocol):
    def __init__(self, settings: MT5Settings | None = None) -> None: ...

    @property
    def state(self) -> ConnectionState: ...

    @property
    def settings(self) -> MT5Settings: ...


_C = TypeVar("_C", bound=_Connector)


class ProcessInstance:
    """One slot, one lock: the process-wide connector of either kind."""

    __slots__ = ("_instance", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instance: Any = None

    def get(self, kind: type[_C], settings: MT5Settings | None, close_hint: str) -> _C:
        """The live connector of ``kind``, or a new one made with ``kind(settings)``.

        Raises:
            MT5ConfigurationError: A live connector exists with other settings or of the
                other kind.
        """
        with self._lock:
            live = self._instance
            if live is not None and live.state is not ConnectionState.CLOSED:
                if type(live) is not kind:
                    raise MT5ConfigurationError(
                        f"{kind.__name__}.get_instance(): this process's connector is already a "
                        f"live {type(live).__name__} (MetaTrader5 allows one terminal session per "
                        f"process); use it, or call {type(live).__name__}.reset_instance() first"
                    )
                if settings is not None and settings != live.settings:
                    raise MT5ConfigurationError(
                        "get_instance() was asked for different settings while a connector is "
                        f"live; close it ({close_hint}) or call reset_instance() first"
                    )
                return live
            made = kind(settings)
            self._instance = made
            return made

    def take(self, kind: type[Any]) -> Any:
        """Forget the connector if it is of ``kind`` and return it (the caller closes it)."""
        with self._lock:
            live = self._instance
            if live is None or type(live) is not kind:
                return None
            self._instance = None
            return live


process_instance = ProcessInstance()
