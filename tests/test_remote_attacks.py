"""``aiomt5 serve`` and its clients under attack, on loopback.

Each attack runs against a real ``aiomt5 serve`` process (the simulator behind it, the clock
pinned to a weekday) or, for attacks on the client, a hostile server in a thread. For each:
the server is still up, a legitimate client is served within a stated bound, and the
server's threads and memory return to their baseline. Floods come from 127.0.0.2, as they
would from another host; the legitimate client connects from 127.0.0.1.

Everything random is seeded. The default run is reduced; ``-m soak`` runs the full attacks
(more sockets, longer). The measured figures are printed (``-s``) and summarized in
docs/remote.md, "Security model".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aiomt5 import AsyncMT5Connector, MT5ReplyTooLargeError
from aiomt5._core._errors import REMOTE_PROTOCOL, REMOTE_REPLY_TOO_LARGE
from aiomt5._remote import remote_backend
from aiomt5._remote._aiomt5 import ServeTransport
from aiomt5._remote._auth import MAGIC, client_handshake
from aiomt5._remote._client import RemoteTerminal
from aiomt5._remote._wire import FrameReader, encode, send_frame
from aiomt5._settings import MT5Settings

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc and uses 127.0.0.2"
)

HOST = "127.0.0.1"
ATTACKER = "127.0.0.2"
TOKEN = "attack-token-" + "9f8e7d6c5b4a" * 3
SEED = 20261206
START = "2026-03-04T12:00:00Z"  # a Wednesday: the simulated market is open
NOW = datetime(2026, 3, 4, 12, tzinfo=UTC)
HANDSHAKE_TIMEOUT = 2.0
SEND_TIMEOUT = 2.0
IDLE_TIMEOUT = 3.0
MAX_PENDING = 32
SERVED_WITHIN = 2.0  # seconds: a legitimate connector connects and gets an answer
MIB = 1 << 20
FIGURES: dict[str, str] = {}

SERVER_CODE = """
import json, logging, os, resource, sys
options = json.loads(sys.argv[1])
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from aiomt5._remote._server import RemoteServer, return_freed_memory
return_freed_memory()  # as the aiomt5 serve program does
from aiomt5.sim import SimClock, SimTerminal, make_module
nofile = options.pop("spare_descriptors", None)
clock = SimClock.fixed(options.pop("start"))
# A small history cache: what the server holds for clients is not hidden in the simulator's.
terminal = SimTerminal(seed=options.pop("seed"), clock=clock, history_cache_bytes=4 << 20)
module = make_module(terminal)
server = RemoteServer(module, port=0, **options)
if nofile is not None:
    used = len(os.listdir("/proc/self/fd"))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + nofile, hard))
print(server.port, flush=True)
server.serve_forever()
"""


def figure(name: str, value: str) -> None:
    FIGURES[name] = value
    print(f"[attack figure] {name}: {value}")


@pytest.fixture(params=["reduced", pytest.param("full", marks=pytest.mark.soak)])
def scale(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# =========================================================================== the server process


class ServerProcess:
    """``aiomt5 serve`` (the simulator behind it) in a child process; reads its /proc."""

    def __init__(self, **options: Any) -> None:
        options = {
            "token": TOKEN,
            "handshake_timeout": HANDSHAKE_TIMEOUT,
            "send_timeout": SEND_TIMEOUT,
            "idle_timeout": IDLE_TIMEOUT,
            "max_pending": MAX_PENDING,
            "seed": SEED,
            "start": START,
            **options,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, json.dumps(options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.process.kill()
            pytest.fail(f"the server did not start: {line!r} {self.process.stderr.read()}")
        self.port = int(line)
        self.url = f"aiomt5://{HOST}:{self.port}"
        self.log: list[str] = []
        stderr = self.process.stderr
        threading.Thread(target=lambda: self.log.extend(stderr), daemon=True).start()
        served_within(self)  # warm up: imports, the first call, the sim's first history
        self.threads = settle(self.thread_count, above=0, within=5.0)
        self.memory = self.rss()

    def _status(self, key: str) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise AssertionError(key)

    def thread_count(self) -> int:
        return self._status("Threads")

    def rss(self) -> int:
        return self._status("VmRSS") * 1024

    def peak(self) -> int:
        return self._status("VmHWM") * 1024

    def assert_up(self) -> None:
        assert self.process.poll() is None, "".join(self.log[-20:])

    def assert_back_to_baseline(self, attack: str, *, memory_slack: int = 48 * MIB) -> None:
        """Threads back to the baseline, memory within ``memory_slack`` of it (bounded wait)."""
        self.assert_up()
        started = time.monotonic()
        threads = settle(self.thread_count, above=self.threads, within=HANDSHAKE_TIMEOUT + 5)
        memory = settle(self.rss, above=self.memory + memory_slack, within=5.0)
        figure(
            f"{attack}: back to baseline",
            f"{time.monotonic() - started:.2f} s, threads {threads} (baseline {self.threads}), "
            f"RSS {memory / MIB:.0f} MiB (baseline {self.memory / MIB:.0f} MiB)",
        )
        assert threads <= self.threads
        assert memory <= self.memory + memory_slack

    def close(self) -> None:
        self.process.kill()
        self.process.communicate()


def settle(read: Callable[[], int], *, above: int, within: float) -> int:
    """Poll ``read()`` until it is at most ``above`` or ``within`` seconds passed; its value."""
    deadline = time.monotonic() + within
    value = read()
    while value > above and time.monotonic() < deadline:
        time.sleep(0.05)
        value = read()
    return value


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    running = ServerProcess()
    yield running
    running.close()


def settings(**overrides: Any) -> MT5Settings:
    return MT5Settings(backend="sim", **overrides)


def served_within(server: ServerProcess, limit: float = 30.0) -> float:
    """Seconds a legitimate connector takes to connect and get a symbol's info (<= ``limit``)."""

    async def serve_one() -> None:
        backend = remote_backend(server.url, settings(), token=TOKEN)
        connector = AsyncMT5Connector(settings(testing=True, health_check=False), backend=backend)
        async with connector:
            assert (await connector.get_symbol_info("EURUSD")).name == "EURUSD"

    started = time.perf_counter()
    asyncio.run(asyncio.wait_for(serve_one(), limit))
    return time.perf_counter() - started


def attacker_socket(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((HOST, port), timeout, source_address=(ATTACKER, 0))


def authenticated(port: int, source: str = HOST) -> socket.socket:
    sock = socket.create_connection((HOST, port), 5.0, source_address=(source, 0))
    client_handshake(sock, TOKEN)
    return sock


def is_dropped(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (reading what it sends)."""
    deadline = time.monotonic() + within
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                if not sock.recv(65536):
                    return True
            except TimeoutError:
                return False
    return True  # reset


def count_dropped(socks: list[socket.socket]) -> int:
    """How many of ``socks`` the server has closed or answered (evicted: ``BU``, then EOF)."""
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        return len(selector.select(timeout=0.5))


class Attack:
    """Runs ``body(stop)`` in a thread until ``stop`` is set; re-raises what it raised."""

    def __init__(self, body: Callable[[threading.Event], None]) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(body,), daemon=True)
        self._thread.start()

    def _run(self, body: Callable[[threading.Event], None]) -> None:
        try:
            body(self.stop)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error


# =========================================================================== pre-authentication


def test_slowloris_cannot_lock_a_legitimate_client_out(server: ServerProcess, scale: str) -> None:
    sockets, seconds, interval = (64, 4.0, 0.5) if scale == "reduced" else (64, 60.0, 8.0)
    drops = 0

    def slowloris(stop: threading.Event) -> None:
        # Every socket sends one byte of a handshake that never ends, and comes back at once
        # when dropped.
        nonlocal drops
        payload = MAGIC + (1000).to_bytes(2, "big") + b"x" * 1000
        held: list[tuple[socket.socket, int]] = []
        for _ in range(sockets):
            with contextlib.suppress(OSError):
                held.append((attacker_socket(server.port), 0))
        while not stop.wait(interval):
            for i, (sock, sent) in enumerate(held):
                try:
                    sock.send(payload[sent : sent + 1])
                    held[i] = (sock, sent + 1)
                except OSError:
                    drops += 1
                    sock.close()
                    with contextlib.suppress(OSError):
                        held[i] = (attacker_socket(server.port), 0)
        for sock, _ in held:
            sock.close()

    attack = Attack(slowloris)
    time.sleep(min(1.0, seconds / 4))  # the attack is in place
    timings = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        timings.append(served_within(server, limit=10))
        time.sleep(0.25)
    attack.finish()
    figure(
        f"slowloris {sockets} sockets/{seconds:g}s",
        f"legit connector served in max {max(timings):.3f} s over {len(timings)} tries, "
        f"{drops} attacker drops",
    )
    assert max(timings) < SERVED_WITHIN
    server.assert_back_to_baseline("slowloris")


def test_pre_auth_flood_past_the_limit_is_evicted(server: ServerProcess, scale: str) -> None:
    count = 200 if scale == "reduced" else 2000
    held: list[socket.socket] = []
    threads_during = 0

    def flood(stop: threading.Event) -> None:
        nonlocal threads_during
        for _ in range(count):
            if stop.is_set():
                break
            with contextlib.suppress(OSError):
                held.append(attacker_socket(server.port))
            threads_during = max(threads_during, server.thread_count())
        stop.wait()

    attack = Attack(flood)
    time.sleep(0.5)
    took = served_within(server, limit=10)
    attack.finish()
    dropped = count_dropped(held)
    figure(
        f"pre-auth flood {count} sockets",
        f"legit served in {took:.3f} s, server threads peaked at {threads_during} "
        f"(baseline {server.threads}, max_pending {MAX_PENDING}), {dropped} older sockets evicted",
    )
    assert took < SERVED_WITHIN
    # Evicted handshakes take a moment to end: briefly more than max_pending, never unbounded.
    assert threads_during <= server.threads + 2 * MAX_PENDING
    for sock in held:
        sock.close()
    server.assert_back_to_baseline("pre-auth flood")


def test_token_guessing_is_throttled_and_logged_in_aggregate(
    server: ServerProcess, scale: str
) -> None:
    seconds = 3.0 if scale == "reduced" else 30.0
    guessers = 8
    rng = random.Random(SEED)
    answers: dict[bytes, int] = {}
    log_before = len(server.log)

    def guess(stop: threading.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError), attacker_socket(server.port) as sock:
                sock.sendall(MAGIC)
                sock.recv(2)
                token = "".join(rng.choice("abcdef0123456789") for _ in range(40)).encode()
                sock.sendall(len(token).to_bytes(2, "big") + token)
                answer = sock.recv(2)
                answers[answer] = answers.get(answer, 0) + 1

    attacks = [Attack(guess) for _ in range(guessers)]  # guessing in parallel
    time.sleep(0.5)
    took = served_within(server, limit=10)
    time.sleep(seconds - 0.5)
    for attack in attacks:
        attack.finish()
    checked = answers.get(b"NO", 0)
    attempts = sum(answers.values())
    lines = [line for line in server.log[log_before:] if "wrong_token" in line]
    figure(
        f"token guessing {seconds:g}s",
        f"{attempts} attempts ({attempts / seconds:.0f}/s), {checked} tokens checked, "
        f"{len(lines)} log lines; legit (other address) served in {took:.3f} s",
    )
    # A first burst (the parallel guesses of an address without failures), then one check at
    # a time, the delays doubling from 0.1 s to 5 s.
    assert checked <= guessers + 6 + seconds / 5
    assert attempts > checked  # the rest were told "busy" without a check
    assert len(lines) <= 2 + seconds / 10
    assert took < SERVED_WITHIN
    server.assert_back_to_baseline("token guessing")


def test_oversized_handshake_and_frames_are_dropped_without_allocating(
    server: ServerProcess,
) -> None:
    peak = server.peak()
    with attacker_socket(server.port) as sock:  # a token "of 64 kB"
        sock.sendall(MAGIC)
        assert sock.recv(2) == b"HI"
        sock.sendall(b"\xff\xff" + b"x" * 4096)
        assert is_dropped(sock, 2.0)
    frames = [
        struct.pack("!IH", 0xFFFFFFFF, 0),  # a 4 GiB request
        struct.pack("!IH", 16, 65535),  # 65535 buffers
        struct.pack("!IH", 2 * MIB, 0) + b"[" * (2 * MIB),  # over the 1 MiB request limit
        struct.pack("!IH", 8, 0) + b"\xff" * 8,  # not JSON
    ]
    for frame in frames:
        with authenticated(server.port) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(frame)
            assert is_dropped(sock, 2.0)
    grew = server.peak() - peak
    figure("oversized headers and bodies", f"server peak RSS grew {grew / MIB:.1f} MiB")
    assert grew < 16 * MIB
    assert served_within(server) < SERVED_WITHIN
    server.assert_back_to_baseline("oversized frames")


# =========================================================================== authenticated


def test_twenty_years_of_ticks_fail_fast_while_others_are_served(server: ServerProcess) -> None:
    peak_before = server.peak()
    other = remote_backend(server.url, settings(), token=TOKEN)
    assert other.initialize()
    latencies: list[float] = []

    def other_client(stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            assert other.symbol_info_tick("EURUSD") is not None, other.last_error()
            latencies.append(time.perf_counter() - started)

    attack = Attack(other_client)
    terminal = remote_backend(server.url, settings(), token=TOKEN)
    assert terminal.initialize()
    started = time.perf_counter()
    result = terminal.copy_ticks_range("EURUSD", NOW - timedelta(days=20 * 365), NOW, -1)
    took = time.perf_counter() - started
    attack.finish()
    other.shutdown()
    code, text = terminal.last_error()
    terminal.shutdown()
    grew = server.peak() - peak_before
    figure(
        "20-year copy_ticks_range",
        f"refused in {took:.2f} s; another client's {len(latencies)} calls meanwhile took "
        f"max {max(latencies) * 1000:.0f} ms; server peak RSS +{grew / MIB:.0f} MiB "
        f"(max_reply_bytes 64 MiB)",
    )
    assert result is None
    assert code == REMOTE_REPLY_TOO_LARGE
    assert "page_size" in text
    assert took < 10.0
    assert len(latencies) > 10
    assert max(latencies) < 0.5
    assert grew < 3 * 64 * MIB
    server.assert_back_to_baseline("huge history")


async def test_connector_raises_reply_too_large_saying_how_to_page(server: ServerProcess) -> None:
    backend = remote_backend(server.url, settings(), token=TOKEN)
    connector = AsyncMT5Connector(settings(testing=True, health_check=False), backend=backend)
    async with connector:
        await connector.call("symbol_select", "EURUSD", True)
        with pytest.raises(MT5ReplyTooLargeError, match="page"):
            await connector.call("copy_ticks_from", "EURUSD", NOW - timedelta(days=90), 10**7, -1)


def _request_big_reply(sock: socket.socket) -> None:
    start = NOW - timedelta(days=10)
    send_frame(sock, ("copy_ticks_range", encode(("EURUSD", start, NOW, -1)), encode({})))


def test_non_reading_and_slow_clients_are_dropped_and_freed(
    server: ServerProcess, scale: str
) -> None:
    readers = 2 if scale == "reduced" else 8
    stalled = [authenticated(server.port) for _ in range(readers)]
    slow = authenticated(server.port)
    for sock in [*stalled, slow]:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for call in (("initialize", ()), ("symbol_select", ("EURUSD", True))):
            send_frame(sock, (call[0], encode(call[1]), encode({})))
            assert FrameReader(sock).read(MIB, 0)[0][1] is True
        _request_big_reply(sock)
    slow_read = 0

    def read_slowly(stop: threading.Event) -> None:  # 16 kB a second
        nonlocal slow_read
        with contextlib.suppress(OSError):
            while not stop.wait(0.25):
                chunk = slow.recv(4096)
                if not chunk:
                    return
                slow_read += len(chunk)

    reader = Attack(read_slowly)
    started = time.monotonic()
    holding = 0
    threads = server.thread_count()
    while threads > server.threads and time.monotonic() - started < 10 * readers + 10:
        holding = max(holding, server.rss() - server.memory)
        time.sleep(0.05)
        threads = server.thread_count()
    took = time.monotonic() - started
    reader.finish()
    figure(
        f"{readers} non-reading + 1 slow client (10 days of ticks each, ~39 MB)",
        f"server held up to +{holding / MIB:.0f} MiB for them; their threads all ended "
        f"{took:.1f} s after the requests (send_timeout {SEND_TIMEOUT:g} s; the replies are "
        f"built one slice at a time), the slow one after reading {slow_read / 1024:.0f} kB",
    )
    assert threads <= server.threads  # dropped while their sockets are still open, unread
    assert all(is_dropped(sock, 1.0) for sock in [*stalled, slow])  # reset
    assert served_within(server) < SERVED_WITHIN
    for sock in [*stalled, slow]:
        sock.close()
    server.assert_back_to_baseline("non-reading clients")


def test_idle_authenticated_client_times_out(server: ServerProcess) -> None:
    with authenticated(server.port) as sock:
        started = time.monotonic()
        assert is_dropped(sock, IDLE_TIMEOUT + 3)
        took = time.monotonic() - started
    figure(
        "idle authenticated client", f"dropped after {took:.2f} s (idle_timeout {IDLE_TIMEOUT:g})"
    )
    assert took >= IDLE_TIMEOUT - 0.5
    server.assert_back_to_baseline("idle client")


# =========================================================================== the environment


def test_descriptor_exhaustion_does_not_stop_the_server(scale: str) -> None:
    spare = 12
    count = 100 if scale == "reduced" else 1000
    server = ServerProcess(spare_descriptors=spare)
    try:
        held: list[socket.socket] = []

        def flood(stop: threading.Event) -> None:
            for _ in range(count):
                if stop.is_set():
                    break
                with contextlib.suppress(OSError):
                    held.append(attacker_socket(server.port, timeout=2.0))
            stop.wait()

        attack = Attack(flood)
        time.sleep(1.0)
        took = served_within(server, limit=20)
        attack.finish()
        server.assert_up()
        failures = [line for line in server.log if "accept_fail" in line]
        figure(
            f"descriptor exhaustion ({spare} spare fds, {count} sockets)",
            f"legit served in {took:.2f} s; {len(failures)} log lines about failed accepts",
        )
        assert failures, "the flood did not exhaust the descriptors"
        assert len(failures) <= 2  # the first, then at most one aggregate line per 10 s
        assert took < SERVED_WITHIN + HANDSHAKE_TIMEOUT
        for sock in held:
            sock.close()
        server.assert_back_to_baseline("descriptor exhaustion")
    finally:
        server.close()


# =========================================================================== hostile servers


class HostileServer:
    """Completes the handshake like ``aiomt5 serve``, then answers each request with ``reply``.

    ``reply(sock, request_bytes)`` writes whatever it likes; one connection at a time.
    """

    def __init__(self, reply: Callable[[socket.socket], None], *, handshake: bytes = b"HI") -> None:
        self._reply = reply
        self._handshake = handshake
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError, EOFError):
                conn.settimeout(10)
                conn.recv(len(MAGIC))
                conn.sendall(self._handshake)
                size = int.from_bytes(conn.recv(2), "big")
                conn.recv(size)
                conn.sendall(b"OK")
                while True:
                    head = conn.recv(6)
                    if not head:
                        break
                    conn.recv(struct.unpack("!IH", head)[0])
                    self._reply(conn)

    def client(self, *, timeout: float = 1.0, limit: int = 64 * MIB) -> RemoteTerminal:
        transport = ServeTransport(
            HOST,
            self.port,
            token=TOKEN,
            connect_timeout=timeout,
            request_timeout=timeout,
            max_reply_bytes=limit,
        )
        return RemoteTerminal(transport, "hostile")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=15)


@contextlib.contextmanager
def hostile(reply: Callable[[socket.socket], None], **options: Any) -> Iterator[HostileServer]:
    threads = threading.active_count()
    evil = HostileServer(reply, **options)
    try:
        yield evil
    finally:
        evil.close()
        assert settle(threading.active_count, above=threads, within=5.0) <= threads


def _ok_reply(value: Any = 5) -> bytes:
    body = json.dumps(["ok", value, [1, "Success"]]).encode()
    return struct.pack("!IH", len(body), 0) + body


@pytest.mark.parametrize(
    "header",
    [
        struct.pack("!IH", 0xFFFFFFFF, 0),  # a 4 GiB message
        struct.pack("!IH", 10, 1) + struct.pack("!Q", 1 << 40),  # a 1 TiB buffer
        struct.pack("!IH", 10, 60000),  # 60000 buffers
    ],
    ids=["message", "buffer", "buffers"],
)
def test_client_refuses_huge_headers_before_allocating(header: bytes) -> None:
    with hostile(lambda sock: sock.sendall(header)) as evil:
        terminal = evil.client()
        assert terminal.initialize() is False
        assert terminal.last_error()[0] == REMOTE_PROTOCOL
        assert "too big" in terminal.last_error()[1]


def test_client_allocates_as_data_arrives_within_its_limit() -> None:
    # A 512 MiB buffer is announced (under the client's default 1 GiB limit); 2 MiB arrive,
    # then nothing.
    def announce_and_stall(sock: socket.socket) -> None:
        message = b'["ok",["a","|u1",[536870912],0],[1,"Success"]]'
        sock.sendall(struct.pack("!IH", len(message), 1) + struct.pack("!Q", 512 * MIB) + message)
        sock.sendall(b"\0" * 2 * MIB)
        time.sleep(3)

    with hostile(announce_and_stall) as evil:
        terminal = evil.client(timeout=1.0, limit=1 << 30)
        tracemalloc.start()
        try:
            started = time.perf_counter()
            ok = terminal.initialize()
            took = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    figure(
        "hostile server announcing 512 MiB, sending 2 MiB",
        f"client peak allocation {peak / MIB:.1f} MiB, failed after {took:.2f} s (timeout 1 s)",
    )
    assert ok is False
    assert terminal.last_error()[0] == -10002
    assert peak < 16 * MIB
    assert took < 1.0 + 0.5


def test_trickling_server_cannot_stretch_a_call_past_its_timeout(scale: str) -> None:
    pause = 0.05 if scale == "reduced" else 1.5
    reply = _ok_reply(list(range(200)))
    calls = 0

    def trickle(sock: socket.socket) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # initialize() is answered at once
            sock.sendall(_ok_reply(True))
            return
        for byte in reply:
            sock.sendall(bytes([byte]))
            time.sleep(pause)

    with hostile(trickle) as evil:
        terminal = evil.client(timeout=1.0)
        assert terminal.initialize()
        started = time.perf_counter()
        result = terminal.version()
        took = time.perf_counter() - started
    figure(
        f"server trickling a byte every {pause:g} s",
        f"a call with a 1 s timeout failed after {took:.2f} s",
    )
    assert result == (0, 0, "")
    assert terminal.last_error()[0] == -10002
    assert took < 1.0 + 0.5


def test_trickling_handshake_is_bounded_by_the_connect_timeout() -> None:
    def never(sock: socket.socket) -> None:
        pass

    with hostile(never, handshake=b"H") as evil:  # half a hello, then silence
        terminal = evil.client(timeout=1.0)
        started = time.perf_counter()
        assert terminal.initialize() is False
        took = time.perf_counter() - started
    assert terminal.last_error()[0] == -10004
    assert took < 1.0 + 0.5


def _garbage(rng: random.Random) -> bytes:
    valid = _ok_reply(["s", "Tick", [1, 1.0, 1.1, 0.0, 0, 1000, 2, 0.0]])
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:
        return valid[: rng.randrange(1, len(valid))]
    if kind == 2:  # one byte flipped
        at = rng.randrange(len(valid))
        return valid[:at] + bytes([valid[at] ^ (1 << rng.randrange(8))]) + valid[at + 1 :]
    values = [
        ["dt", [2026, 1, 1, 0, 0, 0, 0], 10**12],
        ["dt", [2026, 13, 1, 0, 0, 0, 0], None],
        ["a", [["x", "<i8"]] * 3, [2], 0],
        ["s", "Tick", [1, 2]],
        ["s", "NoSuch", []],
        [[[[[[[[[[[[[[1]]]]]]]]]]]]]],
        ["d", [[1, 2]]],
        ["a", "|O", [1], 0],
        "x" * 100,
    ]
    if kind == 3:
        return _ok_reply(rng.choice(values))
    if kind == 4:
        body = json.dumps([rng.choice(["ok", "raise", 1]), rng.choice(values), [1]]).encode()
        return struct.pack("!IH", len(body), 0) + body
    body = b"[" * rng.randrange(1, 100_000)
    return struct.pack("!IH", len(body), 0) + body


def test_garbage_replies_are_typed_protocol_errors(scale: str) -> None:
    rounds = 150 if scale == "reduced" else 3000
    rng = random.Random(SEED)
    codes: dict[int | str, int] = {}
    current = b""

    def send_garbage(sock: socket.socket) -> None:
        sock.sendall(current)
        sock.shutdown(socket.SHUT_WR)  # what is missing never comes

    with hostile(send_garbage) as evil:
        terminal = evil.client(timeout=1.0)
        for _ in range(rounds):
            current = _garbage(rng)
            terminal.shutdown()
            # Never a raw ValueError: a value (a well-formed reply, however odd) or a failure.
            outcome = "value" if terminal.initialize() else terminal.last_error()[0]
            codes[outcome] = codes.get(outcome, 0) + 1
        terminal.shutdown()
    figure(f"{rounds} garbage replies", f"outcomes {codes}")
    assert set(codes) <= {REMOTE_PROTOCOL, -10002, "value"}
    assert codes.get(REMOTE_PROTOCOL, 0) > rounds // 2
