"""The backend seam: whatever the worker thread calls, shaped like the ``MetaTrader5`` module.

A backend is anything with MetaTrader5's functions, calling conventions and return types: the
real C extension (Windows), the built-in simulator (``aiomt5.sim.SimTerminal``), a remote
terminal client (``aiomt5://host:port`` for ``aiomt5 serve``, ``mt5linux://host:port``), or a
test double passed as ``backend=``. Only the worker thread ever calls it.

This is the only module allowed to import ``MetaTrader5`` (ruff TID251 enforces it).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from aiomt5._core._errors import MT5ConfigurationError, MT5NotAvailableError
from aiomt5._settings import BackendURL, MT5Settings, parse_backend_url

__all__ = [
    "LOCAL_BACKENDS",
    "REQUIRED_FUNCTIONS",
    "Backend",
    "BackendSlot",
    "ResolvedBackend",
    "backend_function",
    "constant_name",
    "local_backend",
    "metatrader5_importable",
    "resolve_backend",
    "runs_in_child",
]

LOCAL_BACKENDS: Final = ("auto", "metatrader5", "sim")
"""Backend names that run on this machine (in this process or a child, see ``isolation``)."""

REQUIRED_FUNCTIONS: Final = (
    "initialize",
    "login",
    "shutdown",
    "last_error",
    "terminal_info",
    "account_info",
)
"""Functions a ``backend=`` object must have for the connector to manage a connection."""


class Backend(Protocol):
    """What the connector calls directly; any other MetaTrader5 function is reached by name."""

    def initialize(self, *args: Any, **kwargs: Any) -> bool: ...

    def login(self, *args: Any, **kwargs: Any) -> bool: ...

    def shutdown(self) -> object: ...

    def last_error(self) -> tuple[int, str]: ...

    def terminal_info(self) -> Any: ...

    def account_info(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class ResolvedBackend:
    """A backend ready to use, with a short description for logs and stats."""

    module: Backend
    description: str
    restart: Callable[[], None] | None = None
    """Ends a stuck call by replacing the process the backend runs in (None: nothing can)."""
    send_ahead: Callable[[list[tuple[str, tuple[Any, ...], Any]]], None] | None = None
    """Takes read requests before their calls, to overlap round trips (None: cannot)."""
    close: Callable[[], None] | None = None
    """Releases what was built for the connector when it closes (its child process)."""


def _import_metatrader5() -> Any:
    import MetaTrader5  # noqa: TID251  # the one sanctioned import of the C extension

    return MetaTrader5


def _metatrader5_missing(*, auto: bool) -> MT5NotAvailableError:
    if auto:
        return MT5NotAvailableError(
            "backend='auto' found no MetaTrader5 package: it exists only for Windows "
            "(pip install MetaTrader5 there). Elsewhere use backend='sim' (MT5_BACKEND=sim) "
            "for the built-in simulated terminal, or a remote terminal with "
            "'mt5linux://host:port' or 'aiomt5://host:port'"
        )
    return MT5NotAvailableError(
        "backend='metatrader5' needs the MetaTrader5 package, which is Windows-only: "
        "`pip install MetaTrader5` on Windows, or use backend='sim' for the simulator"
    )


def _load_metatrader5(*, auto: bool) -> ResolvedBackend:
    try:
        module = _import_metatrader5()
    except ImportError as exc:
        raise _metatrader5_missing(auto=auto) from exc
    version = getattr(module, "__version__", "?")
    return ResolvedBackend(cast(Backend, module), f"MetaTrader5 {version}")


def _build_sim(settings: MT5Settings) -> ResolvedBackend:
    from aiomt5.sim import sim_terminal_from_settings  # keep `import aiomt5` light

    terminal, _ = sim_terminal_from_settings(settings)
    return ResolvedBackend(cast(Backend, terminal), _sim_description(settings))


def _sim_description(settings: MT5Settings) -> str:
    gil = ", holds the GIL" if settings.sim_hold_gil else ""
    return f"sim(seed={settings.sim_seed}{gil})"


def _check_object(backend: object) -> ResolvedBackend:
    missing = [name for name in REQUIRED_FUNCTIONS if not callable(getattr(backend, name, None))]
    if missing:
        raise MT5ConfigurationError(
            f"backend={type(backend).__name__} object lacks {', '.join(missing)}: pass the "
            "MetaTrader5 module, an aiomt5.sim.SimTerminal, or an object with the same functions"
        )
    isolation = sys.modules.get("aiomt5._remote._isolation")  # a ChildTerminal imported it
    if isolation is not None and isinstance(backend, isolation.ChildTerminal):
        description = f"custom({type(backend).__name__})"
        return ResolvedBackend(
            cast(Backend, backend), description, backend.restart, backend.send_ahead
        )
    return ResolvedBackend(cast(Backend, backend), f"custom({type(backend).__name__})")


def resolve_backend(backend: object | None, settings: MT5Settings) -> ResolvedBackend:
    """Turn ``backend=`` (or ``settings.backend`` when None) into something the worker can call.

    Args:
        backend: A module-like object, a backend name/URL, or None for ``settings.backend``.
        settings: Used for the name when ``backend`` is None, and to build the simulator.

    Raises:
        MT5NotAvailableError: The MetaTrader5 package is missing, or ``mt5linux://`` was asked
            for without the ``remote`` extra (rpyc) installed.
        MT5ConfigurationError: ``backend`` is neither a known name nor a MetaTrader5-like object.
    """
    if backend is None:
        backend = settings.backend
    if not isinstance(backend, str):
        return _check_object(backend)
    name = backend.strip().lower()
    if name in LOCAL_BACKENDS:
        if runs_in_child(name, settings):
            return _isolated(name, settings)
        return local_backend(name, settings)
    try:
        url = parse_backend_url(backend.strip())
    except ValueError as exc:
        raise MT5ConfigurationError(str(exc)) from exc
    return _remote(url, settings)


def _remote(url: BackendURL, settings: MT5Settings) -> ResolvedBackend:
    from aiomt5._remote import remote_backend

    try:
        backend = remote_backend(url, settings)
    except ImportError as exc:  # mt5linux:// speaks rpyc: the optional `remote` extra
        raise MT5NotAvailableError(
            f"backend {url} needs rpyc, in the remote extra: pip install 'aiomt5[remote]'"
        ) from exc
    return ResolvedBackend(cast(Backend, backend), f"remote({url})")


def runs_in_child(name: str, settings: MT5Settings) -> bool:
    """Whether the local backend ``name`` (one of ``LOCAL_BACKENDS``) runs in a child process.

    ``settings.isolation``: "process" or "thread" as asked; "auto" isolates whatever holds the
    GIL while it waits: the MetaTrader5 module (unless it was made in this process, as
    ``aiomt5.sim.install()`` does: a child could not import it), the simulator with
    ``sim_hold_gil``.
    """
    if settings.isolation != "auto":
        return settings.isolation == "process"
    if name == "sim":
        return settings.sim_hold_gil
    return not _metatrader5_only_here()


def _metatrader5_only_here() -> bool:
    """A ``MetaTrader5`` module made in this process (``aiomt5.sim.install()``): no child has it."""
    module = sys.modules.get("MetaTrader5")
    return module is not None and getattr(module, "__spec__", None) is None


def local_backend(name: str, settings: MT5Settings) -> ResolvedBackend:
    """The local backend ``name`` built in this process, whatever ``settings.isolation`` says.

    What a child process of ``isolation="process"`` runs for its parent.
    """
    if name == "sim":
        return _build_sim(settings)
    return _load_metatrader5(auto=name == "auto")


def _isolated(name: str, settings: MT5Settings) -> ResolvedBackend:
    """The backend in a child process, which the supervisor replaces if a call wedges."""
    from aiomt5._remote._isolation import ChildTerminal  # served by the child on a loopback port

    spec = "sim" if name == "sim" else "metatrader5"
    if spec == "metatrader5" and not metatrader5_importable():
        raise _metatrader5_missing(auto=name == "auto")  # say so here, not from a dead child
    child = ChildTerminal(spec, hard_limit=_hard_limit(settings), settings=settings)
    inner = _sim_description(settings) if spec == "sim" else spec
    return ResolvedBackend(
        cast(Backend, child), f"process({inner})", child.restart, child.send_ahead, child.close
    )


def _hard_limit(settings: MT5Settings) -> float | None:
    """``isolation_hard_limit``, never shorter than a connect attempt may legitimately take."""
    limits = (settings.isolation_hard_limit, settings.connect_timeout)
    return None if None in limits else max(limit for limit in limits if limit is not None)


def constant_name(backend: object, prefix: str, value: int) -> str:
    """The name of a backend constant with ``prefix`` and ``value`` (``""`` if none).

    Example: ``constant_name(mt5, "TRADE_RETCODE_", 10019) == "TRADE_RETCODE_NO_MONEY"``.
    """
    for name in dir(backend):
        if name.startswith(prefix) and getattr(backend, name, None) == value:
            return name
    return ""


def backend_function(backend: Backend, name: str) -> Callable[..., Any] | None:
    """The backend's function ``name``, or None if it has none (or it is not callable)."""
    function = getattr(backend, name, None)
    return function if callable(function) else None


def metatrader5_importable() -> bool:
    """True when ``import MetaTrader5`` would succeed on this machine."""
    try:
        return importlib.util.find_spec("MetaTrader5") is not None
    except ValueError:  # in sys.modules without a spec: made in this process, but there
        return True


class BackendSlot:
    """The connector's backend: resolved once, on first use, then kept.

    An object is checked at once; a name or URL is resolved when the first connect attempt
    asks for it (its import may fail, and that failure belongs to the attempt).

    Args:
        spec: ``backend=`` as given to the connector (None: ``settings.backend``).
        settings: The connector's settings.
    """

    __slots__ = ("_settings", "_spec", "resolved")

    def __init__(self, spec: object | None, settings: MT5Settings) -> None:
        self._spec = spec
        self._settings = settings
        self.resolved: ResolvedBackend | None = None
        if spec is not None and not isinstance(spec, str):
            self.resolved = resolve_backend(spec, settings)

    def __call__(self) -> ResolvedBackend:
        resolved = self.resolved
        if resolved is None:
            resolved = self.resolved = resolve_backend(self._spec, self._settings)
        return resolved

    @property
    def description(self) -> str:
        """The backend, as logs and stats show it."""
        resolved = self.resolved
        return resolved.description if resolved is not None else self._settings.backend
