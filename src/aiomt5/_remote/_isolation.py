"""Process isolation: the backend runs in a child process that can be killed when it wedges.

The real MetaTrader5 extension holds the GIL for the whole of every call (it never calls
``PyEval_SaveThread``): in-process, a call waiting on the terminal stops every other thread,
the event loop included, and a call that hangs can never be interrupted. ``ChildTerminal`` moves
the backend into a child process, which answers the framed protocol of ``aiomt5 serve``
(``_wire``); this process's waits for it are socket reads, which release the GIL.

On POSIX each link is one end of a ``socketpair`` handed to the child over a private Unix
socket (``socket.send_fds``): nothing listens, nobody else can connect, and a Unix socket
does less work per byte than TCP loopback. Elsewhere (Windows: no fd
passing) the child serves ``aiomt5 serve`` on a loopback port with a fresh random token and
this process connects as an ``aiomt5://`` client. Either way the child is trusted: a big
array's memory is taken at once for its size instead of growing as it arrives.

A call that gets no reply within ``hard_limit`` seconds kills
the child, and ``restart()`` (the supervisor, when a call is stuck) does the same at once: the
call in flight fails like a broken pipe (``None`` + ``-10002``), later calls fail with
``-10004``, and the next ``initialize()`` (the supervisor's reconnect) starts a new child.

The child's stdin and stdout pipes are a private control channel: the child exits when its
stdin closes (the parent died, or ``close()``), and a simulator's fault injector is driven
through it (``ChildTerminal.faults``). The child is also stopped when the ``ChildTerminal`` is
collected or the parent exits.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeVar

from aiomt5._core._worker import WRITE_FUNCTIONS

from ._aiomt5 import ServeTransport
from ._bounded import reply_too_large
from ._client import FramedLink, LinkError, RemoteTerminal
from ._server import TOKEN_ENV, RemoteServer, return_freed_memory
from ._wire import MAX_REPLY_BYTES, SERVED_FUNCTIONS, WireError, encode, serve_frames

if TYPE_CHECKING:
    from aiomt5._settings import MT5Settings
    from aiomt5.sim import FaultRecord

__all__ = ["ChildFaults", "ChildHang", "ChildTerminal", "child_main", "load_backend"]

_T = TypeVar("_T")

_READY: Final = "aiomt5-child-ready "
# The child's end of the private Unix socket its links are handed over on (POSIX).
_LINKS_FD_ENV: Final = "AIOMT5_CHILD_LINKS_FD"
# Buffers above this get their own mapping in the child, unmapped when freed (a 60 MB tick
# array); below it they are reused from the heap. At glibc's 128 KiB a simulator building
# 1M ticks (8 MB temporaries) took several times as long, each one a fresh mapping to fault in.
_CHILD_MMAP_THRESHOLD: Final = 32 << 20
HANDS_OVER_LINKS: Final = hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")
"""Whether links to a child are socketpairs handed over to it (POSIX) or TCP (Windows)."""
# Answered without a round trip, or managing the link: never sent ahead.
_LOCAL: Final = frozenset({"initialize", "shutdown", "last_error"})
_CHILD_CODE: Final = (
    "import sys; from aiomt5._remote._isolation import child_main; "
    "sys.exit(child_main(sys.argv[1:]))"
)
# What the parent may ask a simulator's fault injector to do (``aiomt5.sim.Faults``).
_FAULT_METHODS: Final = frozenset(
    {
        "fail",
        "lose_reply",
        "break_pipe",
        "break_pipe_on",
        "drop_trade_server",
        "restore_trade_server",
        "hang",
        "release_all",
        "latency",
        "reject_login",
        "random",
        "clear",
    }
)


def load_backend(spec: str, settings: dict[str, Any] | None = None) -> object:
    """Build a backend from ``"sim"``, ``"metatrader5"`` or ``"package.module:factory"``.

    A factory is called with no arguments and returns a MetaTrader5-like module. ``settings``
    are ``MT5Settings`` fields (the simulator's ``sim_*``) for ``"sim"``.

    Raises:
        ValueError: ``spec`` names no importable factory.
    """
    if spec in ("sim", "metatrader5"):
        from aiomt5._backends import local_backend
        from aiomt5._settings import MT5Settings

        fields = {**(settings or {}), "backend": spec, "isolation": "thread"}
        return local_backend(spec, MT5Settings(_env_file=None, **fields)).module
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(
            f"backend {spec!r}: expected 'sim', 'metatrader5' or 'package.module:factory'"
        )
    factory = getattr(importlib.import_module(module_name), attribute)
    return factory()


# --------------------------------------------------------------------------- the child


def child_main(argv: Sequence[str]) -> int:
    """Entry point of the child: serve ``argv[0]``'s backend on a loopback port.

    ``argv[1]``, if given, is a JSON object of settings for ``load_backend``. The token comes
    from ``MT5_REMOTE_TOKEN``; the port is reported on stdout, then stdin/stdout carry fault
    scripts (one JSON line each way) until stdin closes, which ends the process.
    """
    settings = json.loads(argv[1]) if len(argv) > 1 else None
    # stdout is the parent's control channel: whatever the backend prints goes to stderr.
    control, sys.stdout = sys.stdout, sys.stderr
    return_freed_memory(_CHILD_MMAP_THRESHOLD)
    backend = load_backend(argv[0], settings)
    faults = getattr(getattr(backend, "terminal", backend), "faults", None)
    links_fd = os.environ.pop(_LINKS_FD_ENV, None)
    if links_fd is not None:
        links = socket.socket(fileno=int(links_fd))
        _start_control(faults, control, 0)
        _serve_handed_over(links, backend)
        return 0
    # Its one client is the parent, on loopback with a fresh token: no idle timeout, and replies
    # as large as the client accepts (the limits guard a shared server, not this private one).
    server = RemoteServer(
        backend,
        port=0,
        token=os.environ[TOKEN_ENV],
        idle_timeout=None,
        max_reply_bytes=MAX_REPLY_BYTES,
        max_reply_memory=2 * MAX_REPLY_BYTES,
    )
    _start_control(faults, control, server.port)
    server.serve_forever()
    return 0


def _start_control(faults: Any, control: TextIO, port: int) -> None:
    control.write(f"{_READY}{port}\n")
    control.flush()
    threading.Thread(
        target=_control_loop, args=(faults, control), name="aiomt5-child-control", daemon=True
    ).start()


def _serve_handed_over(links: socket.socket, backend: object) -> None:
    """Serve each socket the parent hands over on ``links``; return when the parent is gone.

    Its one client, the parent, gets the backend as it is: no slicing of tick downloads nor a
    memory budget shared between clients (``BoundedBackend``, what a shared ``aiomt5 serve``
    needs). One lock still keeps the calls one at a time: a link the parent has dropped may
    still be finishing one when the next link arrives.
    """
    lock = threading.Lock()
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(links, 1, 1)
        except OSError:
            return
        if not message:
            for fd in fds:
                os.close(fd)
            return  # the parent closed its end: it is gone, or it stopped us
        for fd in fds:
            link = socket.socket(fileno=fd)
            threading.Thread(
                target=_serve_link,
                args=(link, backend, lock),
                name="aiomt5-child-link",
                daemon=True,
            ).start()


def _serve_link(link: socket.socket, backend: object, lock: threading.Lock) -> None:
    with link, contextlib.suppress(OSError, WireError):
        serve_frames(link, backend, lock, too_large=_too_large)


def _too_large(size: int) -> tuple[Any, ...] | None:
    if size <= MAX_REPLY_BYTES:
        return None
    return ("ok", None, reply_too_large(size, MAX_REPLY_BYTES))


def _control_loop(faults: Any, control: TextIO) -> None:
    """Answer the parent's fault scripts; exit the process when the parent is gone."""
    hangs: list[Any] = []
    with contextlib.suppress(OSError, ValueError):
        for line in sys.stdin:
            reply = _control(faults, hangs, line)
            control.write(json.dumps(reply) + "\n")
            control.flush()
    os._exit(0)  # stdin closed: the parent is gone (or closed us)


def _control(faults: Any, hangs: list[Any], line: str) -> list[Any]:
    try:
        method, args, kwargs = json.loads(line)
        return ["ok", _apply(faults, hangs, method, args, kwargs)]
    except Exception as exc:  # noqa: BLE001  # reported to the parent, which raises it
        kind = type(exc).__name__ if isinstance(exc, TypeError | ValueError) else "RuntimeError"
        return ["raise", kind, str(exc)]


def _apply(faults: Any, hangs: list[Any], method: str, args: list[Any], kwargs: Any) -> Any:
    if faults is None:
        raise RuntimeError("this child's backend has no fault injector (only the simulator has)")
    if method == "fired":
        return [[r.function, r.kind, r.code] for r in faults.fired]
    if method == "login_rejection":
        return faults.login_rejection
    if method in ("hang_release", "hang_state"):
        hang = hangs[args[0]]
        if method == "hang_release":
            hang.release()
        return [hang.entered.is_set(), hang.released]
    if method not in _FAULT_METHODS:
        raise ValueError(f"faults.{method} cannot be scripted in a child process")
    result = getattr(faults, method)(*args, **kwargs)
    if method == "hang":
        hangs.append(result)
        return len(hangs) - 1
    return None


# --------------------------------------------------------------------------- the parent


class _Child:
    """One child process at a time: started on demand, killed on a wedge."""

    def __init__(
        self, spec: str, token: str, env: dict[str, str] | None, settings: str | None
    ) -> None:
        self.spec = spec
        self._token = token
        self._env = env
        self._settings = settings
        self._control = threading.Lock()  # one fault script at a time on the pipes
        self.process: subprocess.Popen[str] | None = None
        self.links: socket.socket | None = None  # where links are handed over (POSIX)
        self.port = 0
        self.starts = 0

    def ensure_running(self) -> int:
        if self.process is not None and self.process.poll() is None:
            return self.port
        self.kill()
        env = dict(os.environ if self._env is None else self._env)
        env[TOKEN_ENV] = self._token
        argv = [sys.executable, "-c", _CHILD_CODE, self.spec]
        if self._settings is not None:
            argv.append(self._settings)
        links, theirs = socket.socketpair() if HANDS_OVER_LINKS else (None, None)
        try:
            if theirs is not None:
                env[_LINKS_FD_ENV] = str(theirs.fileno())
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                pass_fds=() if theirs is None else (theirs.fileno(),),
            )
        except BaseException:
            if links is not None:
                links.close()
            raise
        finally:
            if theirs is not None:
                theirs.close()  # the child has its own copy
        assert process.stdout is not None
        self.links = links
        self.process = process  # restart() may kill it while it starts: its pipe then closes
        try:
            line = process.stdout.readline()
        except (OSError, ValueError):  # closed by kill()
            line = ""
        if not line.startswith(_READY):
            if self.process is process:
                self.kill()
            raise LinkError(
                -10003, f"IPC initialize failed: the {self.spec!r} child process did not start"
            )
        self.port = int(line[len(_READY) :])
        self.starts += 1
        return self.port

    def connect(self) -> socket.socket:
        """A new link to the running child: one end of a socketpair, the other handed over.

        Raises:
            LinkError: -10004, the child is gone.
        """
        links = self.links
        gone = LinkError(-10004, f"No IPC connection: the {self.spec!r} child process went away")
        if links is None:
            raise gone
        ours, theirs = socket.socketpair()
        try:
            with theirs:
                socket.send_fds(links, [b"L"], [theirs.fileno()])
        except OSError:
            ours.close()
            raise gone from None
        return ours

    def kill(self) -> None:
        process, self.process = self.process, None
        links, self.links = self.links, None
        if links is not None:
            links.close()
        if process is not None:
            _stop(process)

    def control(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` on the child's fault injector; blocks until the child answers.

        A child in a GIL-holding wait answers between two of its chunks (``aiomt5.sim._gil``).
        """
        try:
            line = json.dumps([method, args, kwargs]) + "\n"
        except TypeError as exc:
            raise TypeError(f"faults.{method}(): only plain values reach a child: {exc}") from None
        with self._control:
            process = self.process
            if process is None or process.poll() is not None:
                raise RuntimeError("no child process runs: connect first")
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                process.stdin.write(line)
                process.stdin.flush()
                answer = process.stdout.readline()
            except (OSError, ValueError):
                answer = ""
        if not answer:
            raise RuntimeError(f"faults.{method}(): the child process went away")
        reply = json.loads(answer)
        if reply[0] == "raise":
            raise {"TypeError": TypeError, "ValueError": ValueError}.get(reply[1], RuntimeError)(
                reply[2]
            )
        return reply[1]


def _stop(process: subprocess.Popen[str]) -> None:
    # Not communicate(): a fault script may be reading the pipes; closing them ends its read.
    # The exit is awaited in a thread: the supervisor kills from the event loop, which must not
    # wait for a loaded machine to schedule the dying child.
    process.kill()
    threading.Thread(target=process.wait, name="aiomt5-child-reaper", daemon=True).start()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            with contextlib.suppress(OSError, ValueError):
                pipe.close()


class _ChildTransport:
    """The link to the child, with requests sent ahead of their calls (``send_ahead``)."""

    def __init__(self, child: _Child, token: str, hard_limit: float | None) -> None:
        self._child = child
        self._token = token
        self._hard_limit = hard_limit
        self._link: FramedLink | ServeTransport | None = None
        # Requests sent and not answered yet, oldest first: their replies come in this order.
        self._ahead: collections.deque[tuple[str, Any, Any]] = collections.deque()

    @property
    def is_open(self) -> bool:
        return self._link is not None

    def open(self) -> None:
        port = self._child.ensure_running()
        link: FramedLink | ServeTransport
        if HANDS_OVER_LINKS:
            sock = self._child.connect()
            url = f"process({self._child.spec})"
            link = FramedLink(sock, url, self._hard_limit, MAX_REPLY_BYTES, trusted=True)
        else:
            link = ServeTransport(
                "127.0.0.1",
                port,
                token=self._token,
                request_timeout=self._hard_limit,
                trusted=True,
            )
            link.open()
        self._link = link
        self._ahead.clear()

    def send_ahead(self, requests: list[tuple[str, Any, Any]]) -> None:
        """Send requests now, in one write; the calls that make them later read the replies."""
        assert self._link is not None
        self._failing_kills(self._link.send, requests)
        self._ahead.extend(requests)

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any] | None]:
        link = self._link
        assert link is not None
        ahead = self._ahead
        while ahead:
            request = ahead.popleft()
            reply = self._failing_kills(link.receive)
            if request == (name, args, kwargs):
                return reply
            # Sent ahead for a call whose caller gave up before it ran: its reply is dropped.
        return self._failing_kills(link.call, name, args, kwargs)

    def _failing_kills(self, exchange: Callable[..., _T], *args: Any) -> _T:
        try:
            return exchange(*args)
        except LinkError:
            # No reply within the hard limit (or the child died): it cannot be trusted any
            # more, and a native call stuck in it can only end with the process.
            self._ahead.clear()
            self._child.kill()
            raise

    def close(self) -> None:
        link, self._link = self._link, None
        self._ahead.clear()
        if link is not None:
            link.close()


class ChildHang:
    """A hang scripted in a child's simulator (``ChildTerminal.faults.hang(...)``)."""

    def __init__(self, child: _Child, index: int, function: str) -> None:
        self._child = child
        self._index = index
        self.function = function

    def release(self) -> None:
        """Let every call blocked by this hang (and later ones) continue."""
        self._child.control("hang_release", self._index)

    @property
    def entered(self) -> bool:
        """True once a call was blocked by this hang."""
        return bool(self._child.control("hang_state", self._index)[0])

    @property
    def released(self) -> bool:
        """True once ``release()`` was called."""
        return bool(self._child.control("hang_state", self._index)[1])


class ChildFaults:
    """A child simulator's fault injector, scripted from this process.

    Every method of ``aiomt5.sim.Faults`` is forwarded to the child's simulator with plain
    arguments (a ``latency`` distribution must be a number here); ``hang()`` returns a
    ``ChildHang``. Scripts apply to the child running now: a replaced child starts clean.
    """

    def __init__(self, child: _Child) -> None:
        self._child = child

    def hang(
        self, function: str, *, times: int | None = 1, seconds: float | None = None
    ) -> ChildHang:
        """Block the next ``times`` calls of ``function`` (see ``aiomt5.sim.Faults.hang``)."""
        index = self._child.control("hang", function, times=times, seconds=seconds)
        return ChildHang(self._child, int(index), function)

    @property
    def fired(self) -> list[FaultRecord]:
        """Every fault that fired in the child, in order."""
        from aiomt5.sim import FaultRecord

        return [FaultRecord(*record) for record in self._child.control("fired")]

    @property
    def login_rejection(self) -> int | None:
        """The code authorization fails with, or None."""
        code = self._child.control("login_rejection")
        return None if code is None else int(code)

    def __getattr__(self, name: str) -> Any:
        if name not in _FAULT_METHODS:
            raise AttributeError(f"faults.{name} cannot be scripted in a child process")

        def forward(*args: Any, **kwargs: Any) -> None:
            self._child.control(name, *args, **kwargs)

        return forward


class ChildTerminal(RemoteTerminal):
    """A MetaTrader5-shaped backend living in a killable child process.

    Args:
        spec: The child's backend: ``"metatrader5"``, ``"sim"`` or ``"package.module:factory"``.
        hard_limit: Seconds a call may go without a reply before the child is killed
            (None: never).
        env: The child's environment (default: this process's).
        settings: Settings the child builds its backend from (the ``sim_*`` fields).

    Example:
        ```python
        backend = ChildTerminal("metatrader5", hard_limit=120.0)
        connector = AsyncMT5Connector(settings, backend=backend)
        ```
    """

    def __init__(
        self,
        spec: str,
        *,
        hard_limit: float | None = 60.0,
        env: dict[str, str] | None = None,
        settings: MT5Settings | None = None,
    ) -> None:
        token = secrets.token_urlsafe(32)
        fields = None
        if settings is not None:
            sim = {name for name in type(settings).model_fields if name.startswith("sim_")}
            fields = settings.model_dump_json(include=sim)
        self._child = _Child(spec, token, env, fields)
        self._transport: _ChildTransport = _ChildTransport(self._child, token, hard_limit)
        super().__init__(self._transport, f"process({spec})")
        self._finalizer = weakref.finalize(self, self._child.kill)
        self.faults = ChildFaults(self._child)
        """The child simulator's fault injector (``aiomt5.sim.Faults``, forwarded)."""

    @property
    def pid(self) -> int | None:
        """The child's process id (None when no child runs)."""
        process = self._child.process
        return process.pid if process is not None and process.poll() is None else None

    @property
    def starts(self) -> int:
        """How many children were started so far (restarts included)."""
        return self._child.starts

    def send_ahead(self, requests: Sequence[tuple[str, tuple[Any, ...], Any]]) -> None:
        """Send ``(function, args, kwargs)`` read requests before they are called (pipelining).

        The worker does this with the calls queued behind the one it is about to make: the
        child answers them back to back, and each call, made in the same order, only reads its
        reply. A call whose caller gave up meanwhile is never made; its reply is dropped. Stops
        at the first request that is not a plain read the wire can carry (it is sent when called).
        """
        encoded: list[tuple[str, Any, Any]] = []
        for name, args, kwargs in requests:
            if name not in SERVED_FUNCTIONS or name in WRITE_FUNCTIONS or name in _LOCAL:
                break
            try:
                encoded.append((name, encode(args), encode(dict(kwargs or {}))))
            except WireError:
                break  # the call itself reports it
        with self._lock:
            if len(encoded) < 2 or not self._transport.is_open:
                return
            try:
                self._transport.send_ahead(encoded)
            except WireError:
                return  # JSON cannot carry one of them: each call reports its own
            except LinkError:
                self._transport.close()  # the calls will find the link closed

    def restart(self) -> None:
        """Kill the child now, from any thread, even while a call is stuck in it.

        The stuck call fails like a broken pipe (``-10002``); the next ``initialize()`` starts
        a fresh child. What the supervisor does when a call stays stuck past its timeout.
        """
        self._child.kill()

    def close(self) -> None:
        """Stop the child for good (it restarts if ``initialize()`` is called again).

        Never blocks on a call stuck in the child: the child goes first, which ends that call.
        """
        self._child.kill()
        self.shutdown()
