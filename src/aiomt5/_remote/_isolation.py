"""Process isolation: the backend runs in a child process that can be killed when it wedges.

Inside one process a native MetaTrader5 call that hangs can never be interrupted: the worker
thread is lost until it returns. ``ChildTerminal`` moves the backend into a child process,
which serves it with ``aiomt5 serve`` on a loopback port with a fresh random token, and talks
to it over the ``aiomt5://`` client. A call that gets no reply within ``hard_limit`` seconds
kills the child: the call fails like a broken pipe (``None`` + ``-10002``), later calls fail
with ``-10004``, and the next ``initialize()`` (the supervisor's reconnect) starts a new child.

The child is also stopped when the ``ChildTerminal`` is collected or the parent exits, and it
exits by itself when the parent dies (it watches its stdin pipe).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import Any, Final

from ._aiomt5 import ServeTransport
from ._client import LinkError, RemoteTerminal
from ._server import TOKEN_ENV, RemoteServer, return_freed_memory
from ._wire import MAX_REPLY_BYTES

__all__ = ["ChildTerminal", "child_main", "load_backend"]

_READY: Final = "aiomt5-child-ready "
_CHILD_CODE: Final = (
    "import sys; from aiomt5._remote._isolation import child_main; "
    "sys.exit(child_main(sys.argv[1:]))"
)


def load_backend(spec: str) -> object:
    """Build a backend from ``"sim"``, ``"metatrader5"`` or ``"package.module:factory"``.

    A factory is called with no arguments and returns a MetaTrader5-like module.

    Raises:
        ValueError: ``spec`` names no importable factory.
    """
    if spec in ("sim", "metatrader5"):
        from aiomt5._backends import resolve_backend
        from aiomt5._settings import MT5Settings

        if spec == "sim":
            from aiomt5.sim import SimTerminal, make_module

            return make_module(SimTerminal())
        return resolve_backend("metatrader5", MT5Settings(backend="metatrader5")).module
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(
            f"backend {spec!r}: expected 'sim', 'metatrader5' or 'package.module:factory'"
        )
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory()


def _exit_with_parent() -> None:
    # stdin is a pipe from the parent: EOF means the parent is gone.
    with contextlib.suppress(OSError, ValueError):
        sys.stdin.read()
    os._exit(0)


def child_main(argv: Sequence[str]) -> int:
    """Entry point of the child: serve ``argv[0]``'s backend on a loopback port.

    The token comes from ``MT5_REMOTE_TOKEN``; the port is reported on stdout.
    """
    threading.Thread(target=_exit_with_parent, name="aiomt5-child-watch", daemon=True).start()
    return_freed_memory()
    # Its one client is the parent, on loopback with a fresh token: no idle timeout, and replies
    # as large as the client accepts (the limits guard a shared server, not this private one).
    server = RemoteServer(
        load_backend(argv[0]),
        port=0,
        token=os.environ[TOKEN_ENV],
        idle_timeout=None,
        max_reply_bytes=MAX_REPLY_BYTES,
        max_reply_memory=2 * MAX_REPLY_BYTES,
    )
    sys.stdout.write(f"{_READY}{server.port}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


class _Child:
    """One child process at a time: started on demand, killed on a wedge."""

    def __init__(self, spec: str, token: str, env: dict[str, str] | None) -> None:
        self._spec = spec
        self._token = token
        self._env = env
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.starts = 0

    def ensure_running(self) -> int:
        if self.process is not None and self.process.poll() is None:
            return self.port
        self.kill()
        env = dict(os.environ if self._env is None else self._env)
        env[TOKEN_ENV] = self._token
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE, self._spec],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(_READY):
            _stop(process)
            raise LinkError(
                -10003, f"IPC initialize failed: the {self._spec!r} child process did not start"
            )
        self.process, self.port = process, int(line[len(_READY) :])
        self.starts += 1
        return self.port

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()


class _ChildTransport:
    def __init__(self, child: _Child, token: str, hard_limit: float | None) -> None:
        self._child = child
        self._token = token
        self._hard_limit = hard_limit
        self._link: ServeTransport | None = None

    @property
    def is_open(self) -> bool:
        return self._link is not None and self._link.is_open

    def open(self) -> None:
        port = self._child.ensure_running()
        link = ServeTransport(
            "127.0.0.1", port, token=self._token, request_timeout=self._hard_limit
        )
        link.open()
        self._link = link

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any] | None]:
        assert self._link is not None
        try:
            return self._link.call(name, args, kwargs)
        except LinkError:
            # No reply within the hard limit (or the child died): it cannot be trusted any
            # more, and a native call stuck in it can only end with the process.
            self._child.kill()
            raise

    def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()


class ChildTerminal(RemoteTerminal):
    """A MetaTrader5-shaped backend living in a killable child process.

    Args:
        spec: The child's backend: ``"metatrader5"``, ``"sim"`` or ``"package.module:factory"``.
        hard_limit: Seconds a call may go without a reply before the child is killed
            (None: never).
        env: The child's environment (default: this process's).

    Example:
        ```python
        backend = ChildTerminal("metatrader5", hard_limit=120.0)
        connector = AsyncMT5Connector(settings, backend=backend)
        ```
    """

    def __init__(
        self, spec: str, *, hard_limit: float | None = 60.0, env: dict[str, str] | None = None
    ) -> None:
        token = secrets.token_urlsafe(32)
        self._child = _Child(spec, token, env)
        super().__init__(_ChildTransport(self._child, token, hard_limit), f"process({spec})")
        self._finalizer = weakref.finalize(self, self._child.kill)

    @property
    def pid(self) -> int | None:
        """The child's process id (None when no child runs)."""
        process = self._child.process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def starts(self) -> int:
        """How many children were started so far (restarts included)."""
        return self._child.starts

    def close(self) -> None:
        """Stop the child for good (it restarts if ``initialize()`` is called again)."""
        self.shutdown()
        self._child.kill()
