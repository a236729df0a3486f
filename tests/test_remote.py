"""Remote terminals: ``aiomt5 serve`` security, the ``aiomt5://`` and ``mt5linux://`` backends.

Servers run on 127.0.0.1 with ephemeral ports: ``aiomt5 serve`` in a thread of the test
process, the mt5linux server as ``python -m mt5linux`` (the package's own classic rpyc server)
in a child process whose ``MetaTrader5`` module is a shim installing the simulator. Every
remote result is compared with a local simulator built with the same seed and frozen clock.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import enum
import json
import os
import random
import re
import secrets
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import rpyc
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st

from aiomt5._connector import AsyncMT5Connector
from aiomt5._core._errors import (
    REMOTE_BUSY,
    REMOTE_PROTOCOL,
    REMOTE_REPLY_TOO_LARGE,
    MT5ConfigurationError,
    MT5ConnectionError,
    MT5LoginError,
    MT5ServerBusyError,
)
from aiomt5._core._events import ConnectorEvent, StateChanged
from aiomt5._core._types import ConnectionState
from aiomt5._mt5.structs import STRUCT_TYPES
from aiomt5._remote import (
    RemoteServer,
    RemoteTerminal,
    _wire,
    client_tls_context,
    remote_backend,
    serve_main,
    server_tls_context,
)
from aiomt5._remote._auth import ServerBusyError, client_handshake, token_matches, token_problem
from aiomt5._remote._bounded import SLICE_ROWS, BoundedBackend
from aiomt5._remote._isolation import ChildTerminal, load_backend
from aiomt5._remote._mt5linux import helper_source
from aiomt5._remote._pool import MT5Pool
from aiomt5._remote._server import _Throttle
from aiomt5._remote._wire import (
    BATCH,
    MAX_BATCH_CALLS,
    MAX_REPLY_BUFFERS,
    MAX_REPLY_BYTES,
    FrameReader,
    WireError,
    decode,
    encode,
    send_frame,
)
from aiomt5._settings import MT5Settings
from aiomt5.sim import (
    DEFAULT_LOGIN,
    DEFAULT_PASSWORD,
    DEFAULT_SERVER,
    SimClock,
    SimTerminal,
    make_module,
)

START = "2026-03-02T10:00:00Z"
SEED = 7
TOKEN = "test-token-" + "a1b2c3d4" * 4
HOST = "127.0.0.1"


def new_sim() -> Any:
    """A fresh simulated MetaTrader5 module; two of them behave identically."""
    return make_module(SimTerminal(seed=SEED, clock=SimClock.fixed(START), maxbars=200_000))


def settings(**overrides: Any) -> MT5Settings:
    return MT5Settings(backend="sim", **overrides)


def free_port() -> int:
    """A port nothing listens on (bound then released by this process)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sim() -> Any:
    return new_sim()


@pytest.fixture
def local() -> Any:
    module = new_sim()
    assert module.initialize()
    return module


@pytest.fixture
def server(sim: Any) -> Iterator[RemoteServer]:
    with RemoteServer(sim, port=0, token=TOKEN) as running:
        yield running


@pytest.fixture
def remote(server: RemoteServer) -> Iterator[RemoteTerminal]:
    terminal = remote_backend(server.url, settings(), token=TOKEN)
    assert terminal.initialize(), terminal.last_error()
    yield terminal
    terminal.shutdown()


def raw_socket(server: RemoteServer, token: str) -> socket.socket:
    """An authenticated connection to ``server`` with no aiomt5 client code on top."""
    sock = socket.create_connection((HOST, server.port), timeout=5)
    try:
        client_handshake(sock, token)
    except BaseException:
        sock.close()  # a refused handshake must not leak the socket into a later test
        raise
    return sock


def raw_call(server: RemoteServer, message: Any) -> Any:
    """Send ``message`` as one request frame, as a hostile client could; return the reply."""
    with raw_socket(server, TOKEN) as sock:
        send_frame(sock, message)
        reply, buffers = FrameReader(sock).read(MAX_REPLY_BYTES, MAX_REPLY_BUFFERS)
    assert buffers == []
    return reply


def assert_dropped(sock: socket.socket) -> None:
    """The server closed the connection (and answered nothing more)."""
    # A reset when it closed with our unread bytes still in its buffer: as good as closed.
    with contextlib.suppress(ConnectionResetError):
        assert sock.recv(1024) == b""


# =========================================================================== aiomt5 serve security


def test_serve_refuses_client_without_token(server: RemoteServer) -> None:
    terminal = remote_backend(server.url, settings())
    assert terminal.initialize() is False
    assert terminal.last_error()[0] == -6
    assert "token" in terminal.last_error()[1]


def test_serve_refuses_wrong_token(server: RemoteServer) -> None:
    terminal = remote_backend(server.url, settings(), token="x" * 32)
    assert terminal.initialize() is False
    assert terminal.last_error()[0] == -6


def test_serve_refuses_rpyc_client_that_skips_the_handshake(server: RemoteServer) -> None:
    def call_without_handshake() -> Any:
        return rpyc.connect(HOST, server.port).root.call("version", ("t", ()), ("d", ()))

    with pytest.raises((EOFError, OSError)):
        call_without_handshake()


def test_serve_refuses_client_of_another_protocol_version(server: RemoteServer) -> None:
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(b"AIOMT5\x01" + len(TOKEN).to_bytes(2, "big") + TOKEN.encode())
        assert sock.recv(2) == b"VE"
        assert_dropped(sock)


def test_client_reports_server_of_another_protocol_version() -> None:
    def newer_server(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"VE")

    with socket.create_server((HOST, 0)) as listener:
        thread = threading.Thread(target=newer_server, args=(listener,))
        thread.start()
        terminal = remote_backend(
            f"aiomt5://{HOST}:{listener.getsockname()[1]}", settings(), token=TOKEN
        )
        assert terminal.initialize() is False
        thread.join()
    code, text = terminal.last_error()
    assert code == -10003
    assert "same aiomt5 release" in text


@pytest.mark.parametrize(
    "name",
    [
        "Buy",
        "_RawOrder",
        "__import__",
        "eval",
        "exec",
        "terminal",
        "__class__",
        "__dict__",
        "_backend",
        "serve_call",
        42,
        None,
        ["version"],
    ],
)
def test_serve_call_refuses_names_outside_the_api(server: RemoteServer, name: Any) -> None:
    reply = raw_call(server, [name, ["t", []], ["d", []]])
    assert reply[:2] == ["raise", "AttributeError"]
    assert server.url  # and it still serves
    assert raw_call(server, ["version", ["t", []], ["d", []]])[0] == "ok"


@pytest.mark.parametrize(
    "args",
    [
        ["t", [{"__class__": 1}]],  # JSON objects are not wire data
        ["a", "<f8", [1], 0],  # arrays are never arguments
        ["s", "Tick", [1, 2, 3, 4, 5, 6, 7, 8]],  # nor structs
        "not a tuple",
    ],
)
def test_serve_call_refuses_non_data_arguments(server: RemoteServer, args: Any) -> None:
    reply = raw_call(server, ["symbol_info", args, ["d", []]])
    assert reply[:2] == ["raise", "TypeError"]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x00\x00\x05\x00\x00" + b"junk!",  # not JSON
        b"\x00\x00\x00\x02\x00\x00" + b"{}",  # JSON, but not a request
        b"\x00\x00\x00\x07\x00\x00" + b"[1,2,3,",  # truncated
        b"\xff\xff\xff\xff\x00\x00",  # a 4 GB request: refused before reading it
        b"\x00\x00\x00\x02\x00\x01" + b"\x00" * 8 + b"[]",  # requests carry no buffers
        b"\x00\x10\x00\x00\x00\x00" + b"[" * 0x100000,  # nested beyond any limit
    ],
)
def test_serve_drops_a_client_that_sends_garbage(server: RemoteServer, frame: bytes) -> None:
    with raw_socket(server, TOKEN) as sock:
        sock.sendall(frame)
        assert_dropped(sock)
    # The server itself is unharmed.
    assert raw_call(server, ["version", ["t", []], ["d", []]])[0] == "ok"


def test_serve_answers_busy_beyond_max_clients(sim: Any) -> None:
    with RemoteServer(sim, port=0, token=TOKEN, max_clients=2) as running:
        first, second = raw_socket(running, TOKEN), raw_socket(running, TOKEN)
        with first, second, socket.create_connection((HOST, running.port), timeout=5) as third:
            with pytest.raises(ServerBusyError):
                client_handshake(third, TOKEN)
            assert_dropped(third)
            busy = remote_backend(running.url, settings(), token=TOKEN)
            assert busy.initialize() is False
            assert busy.last_error()[0] == REMOTE_BUSY  # retryable, never -6
        # Slots free up when clients leave (the server's threads notice it on their own time).
        deadline = time.monotonic() + 10
        while running.connections()[1] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert raw_call(running, ["version", ["t", []], ["d", []]])[0] == "ok"


@settings_(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=20,
    )
)
def test_wire_decode_of_any_json_is_a_value_or_a_wire_error(message: Any) -> None:
    with contextlib.suppress(WireError):
        decode(message, STRUCT_TYPES, arrays=True, buffers=[bytearray(8)])


def test_serve_reply_is_plain_data(server: RemoteServer, local: Any) -> None:
    assert raw_call(server, ["initialize", ["t", []], ["d", []]])[1] is True
    reply = raw_call(server, ["symbol_info_tick", ["t", ["EURUSD"]], ["d", []]])
    assert reply == ["ok", ["s", "Tick", list(local.symbol_info_tick("EURUSD"))], [1, "Success"]]


NO_RPYC = textwrap.dedent(
    """
    import sys
    sys.modules["rpyc"] = None  # as if the remote extra were not installed
    from aiomt5._backends import resolve_backend
    from aiomt5._core._errors import MT5NotAvailableError
    from aiomt5._remote import RemoteServer, remote_backend
    from aiomt5._settings import MT5Settings
    from aiomt5.sim import SimTerminal, make_module

    token = "t" * 32
    settings = MT5Settings(backend="sim")
    with RemoteServer(make_module(SimTerminal()), port=0, token=token) as server:
        terminal = remote_backend(server.url, settings, token=token)
        assert terminal.initialize(), terminal.last_error()
        assert terminal.copy_rates_from_pos("EURUSD", 1, 0, 10).shape == (10,)
        terminal.shutdown()
    try:
        resolve_backend("mt5linux://127.0.0.1:18812", settings)
    except MT5NotAvailableError as exc:
        assert "pip install 'aiomt5[remote]'" in str(exc), exc
    else:
        raise AssertionError("mt5linux:// without rpyc")
    print("ok")
    """
)


def test_serve_and_aiomt5_backend_need_no_rpyc() -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_RPYC], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_serve_binds_loopback_by_default(sim: Any) -> None:
    with RemoteServer(sim, port=0, token=TOKEN) as running:
        assert running.host == "127.0.0.1"


def test_serve_refuses_non_loopback_address_without_token(sim: Any) -> None:
    with pytest.raises(MT5ConfigurationError, match="without a token"):
        RemoteServer(sim, host="0.0.0.0", port=0, allow_no_token=True)


def test_serve_refuses_to_start_without_token_unless_told(sim: Any) -> None:
    with pytest.raises(MT5ConfigurationError, match="needs a token"):
        RemoteServer(sim, port=0)


def test_serve_insecure_no_token_on_loopback_accepts_clients(sim: Any) -> None:
    with RemoteServer(sim, port=0, allow_no_token=True) as running:
        terminal = remote_backend(running.url, settings())
        assert terminal.initialize()
        terminal.shutdown()


def test_serve_refuses_short_token(sim: Any) -> None:
    with pytest.raises(MT5ConfigurationError, match="too short"):
        RemoteServer(sim, port=0, token="short")


def test_token_matches_only_the_exact_token() -> None:
    assert token_matches(b"secret-token", b"secret-token")
    assert not token_matches(b"secret-token", b"secret-token2")
    assert not token_matches(b"", b"secret-token")


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


needs_openssl = pytest.mark.skipif(
    subprocess.run(["which", "openssl"], capture_output=True, check=False).returncode != 0,
    reason="the openssl command makes the test certificate",
)


@needs_openssl
def test_serve_over_tls_answers_a_verifying_client(sim: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with RemoteServer(sim, port=0, token=TOKEN, tls=server_tls_context(cert, key)) as running:
        terminal = remote_backend(running.url, settings(), token=TOKEN)
        terminal._transport._tls = client_tls_context(cert)  # as remote_tls_ca=cert would
        assert terminal.initialize(), terminal.last_error()
        assert terminal.symbol_info_tick("EURUSD") is not None
        terminal.shutdown()


@needs_openssl
def test_serve_over_tls_refuses_plain_client(sim: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with RemoteServer(sim, port=0, token=TOKEN, tls=server_tls_context(cert, key)) as running:
        terminal = remote_backend(running.url, settings(), token=TOKEN)
        assert terminal.initialize() is False
        code, text = terminal.last_error()
        assert code == REMOTE_PROTOCOL
        assert "uses TLS" in text
        assert "token was not sent" in text


# =========================================================================== aiomt5:// results


STRUCT_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("terminal_info", (), {}),
    ("account_info", (), {}),
    ("symbol_info", ("EURUSD",), {}),
    ("symbol_info_tick", ("XAUUSD",), {}),
    ("symbols_get", (), {"group": "*USD*"}),
    ("version", (), {}),
    ("symbols_total", (), {}),
    ("positions_get", (), {}),
    ("order_calc_margin", (0, "EURUSD", 1.0, 1.1), {}),
]

ARRAY_CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("copy_rates_from_pos", ("EURUSD", 16385, 0, 100)),
    ("copy_rates_from", ("GBPUSD", 1, datetime(2026, 2, 27, 12, tzinfo=UTC), 50)),
    ("copy_rates_range", ("USDJPY", 5, 1772150400, 1772236800)),
    ("copy_ticks_from", ("EURUSD", datetime(2026, 2, 27, 12, tzinfo=UTC), 500, -1)),
    ("copy_ticks_range", ("EURUSD", 1772193600, 1772194200, 1)),
]


def assert_same(remote_value: Any, local_value: Any) -> None:
    assert type(remote_value).__name__ == type(local_value).__name__
    if isinstance(local_value, np.ndarray):
        assert remote_value.dtype == local_value.dtype
        assert remote_value.tobytes() == local_value.tobytes()
        assert remote_value.flags.writeable
    else:
        assert remote_value == local_value


@pytest.mark.parametrize(("name", "args", "kwargs"), STRUCT_CALLS)
def test_aiomt5_struct_results_equal_local_simulator(
    remote: RemoteTerminal, local: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    got = getattr(remote, name)(*args, **kwargs)
    assert_same(got, getattr(local, name)(*args, **kwargs))
    if hasattr(got, "_asdict"):
        assert got._asdict() == getattr(local, name)(*args, **kwargs)._asdict()


def test_aiomt5_large_array_arrives_whole(remote: RemoteTerminal, local: Any) -> None:
    got = remote.copy_rates_from_pos("EURUSD", 1, 0, 150_000)
    assert len(got) == 150_000
    assert_same(got, local.copy_rates_from_pos("EURUSD", 1, 0, 150_000))
    got["close"] = 0.0  # the caller owns it
    assert remote.copy_rates_from_pos("EURUSD", 1, 0, 3)["close"].all()


def test_aiomt5_batch_is_one_request_with_each_calls_result_and_last_error(
    remote: RemoteTerminal, local: Any
) -> None:
    sent: list[str] = []
    transport = remote._transport
    call = transport.call

    def counted(name: str, args: Any, kwargs: Any) -> Any:
        sent.append(name)
        return call(name, args, kwargs)

    transport.call = counted  # type: ignore[method-assign]
    calls = [(args, None) for _, args in ARRAY_CALLS if _ == "copy_rates_from_pos"] * 3
    calls += [(("NOPE", 16385, 0, 10), None), (("GBPUSD", 16385, 0, 7), None)]
    steps = remote.call_many("copy_rates_from_pos", calls)
    assert steps is not None
    assert sent == [BATCH]
    for (args, _), step in zip(calls, steps, strict=True):
        expected = local.copy_rates_from_pos(*args)
        assert_same(step(), expected)
        assert remote.last_error() == local.last_error()  # each call's own, replayed in order


def test_serve_answers_a_hostile_batch_without_dropping_the_client(server: RemoteServer) -> None:
    call = [["t", ["EURUSD"]], ["d", []]]
    too_many = raw_call(server, [BATCH, "symbol_info", [call] * (MAX_BATCH_CALLS + 1)])
    assert too_many[:2] == ["raise", "ValueError"]
    assert raw_call(server, [BATCH, "symbol_info", "nonsense"])[:2] == ["raise", "ValueError"]
    reply = raw_call(server, [BATCH, "symbol_info", [call, ["x"], [["zz", 1], ["d", []]]]])
    assert reply[0] == "many"
    assert [answer[0] for answer in reply[1]] == ["ok", "raise", "raise"]
    assert raw_call(server, [BATCH, "not_a_function", [call]])[1][0][:2] == [
        "raise",
        "AttributeError",
    ]


@pytest.mark.parametrize(("name", "args"), ARRAY_CALLS)
def test_aiomt5_array_results_equal_local_simulator(
    remote: RemoteTerminal, local: Any, name: str, args: tuple[Any, ...]
) -> None:
    got = getattr(remote, name)(*args)
    assert len(got) > 0
    assert_same(got, getattr(local, name)(*args))


class Frame(enum.IntEnum):
    H1 = 16385


def test_aiomt5_accepts_numpy_scalars_enums_and_datetimes(
    remote: RemoteTerminal, local: Any
) -> None:
    got = remote.copy_rates_from("EURUSD", Frame.H1, np.int64(1772409600), np.int32(24))
    assert_same(got, local.copy_rates_from("EURUSD", 16385, 1772409600, 24))
    aware = datetime(2026, 3, 2, 12, tzinfo=UTC) + timedelta(hours=0)
    got = remote.copy_ticks_from("EURUSD", aware, np.uint16(10), -1)
    assert_same(got, local.copy_ticks_from("EURUSD", aware, 10, -1))


def test_aiomt5_order_send_returns_nested_structs(remote: RemoteTerminal, local: Any) -> None:
    def request(module: Any) -> dict[str, Any]:
        price = module.symbol_info_tick("EURUSD").ask
        return {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "price": price}

    got = remote.order_send(request(remote))
    assert_same(got, local.order_send(request(local)))
    assert type(got.request).__name__ == "TradeRequest"
    assert_same(remote.positions_get(symbol="EURUSD"), local.positions_get(symbol="EURUSD"))


def test_aiomt5_failure_reports_remote_last_error(remote: RemoteTerminal, local: Any) -> None:
    assert remote.symbol_info("NOSUCH") is None
    assert local.symbol_info("NOSUCH") is None
    assert remote.last_error() == local.last_error() == (-4, "Terminal: Not found")


def test_aiomt5_remote_type_error_is_raised_locally(remote: RemoteTerminal) -> None:
    with pytest.raises(TypeError):
        remote.version(1)


def test_aiomt5_unsendable_argument_raises_type_error(remote: RemoteTerminal) -> None:
    with pytest.raises(TypeError, match="cannot send a object"):
        remote.symbol_info(object())


def test_aiomt5_exposes_constants_and_struct_types(remote: RemoteTerminal, local: Any) -> None:
    assert remote.TIMEFRAME_H1 == local.TIMEFRAME_H1
    assert remote.TRADE_RETCODE_DONE == 10009
    assert remote.Tick is STRUCT_TYPES["Tick"]
    with pytest.raises(AttributeError):
        _ = remote.no_such_function


# ====================================================================== aiomt5:// link failures


def test_call_before_initialize_fails_with_no_ipc_connection(server: RemoteServer) -> None:
    terminal = remote_backend(server.url, settings(), token=TOKEN)
    assert terminal.symbol_info_tick("EURUSD") is None
    assert terminal.symbol_select("EURUSD", True) is False
    assert terminal.last_error() == (-10004, "No IPC connection")


def test_unreachable_server_initialize_fails_with_no_ipc_connection() -> None:
    terminal = remote_backend(f"aiomt5://{HOST}:{free_port()}", settings(), token=TOKEN)
    assert terminal.initialize() is False
    assert terminal.last_error()[0] == -10004


def test_server_gone_fails_with_recv_error_then_reconnects(sim: Any) -> None:
    first = RemoteServer(sim, port=0, token=TOKEN)
    first.start()
    port = first.port
    terminal = remote_backend(first.url, settings(), token=TOKEN)
    assert terminal.initialize()
    first.close()
    assert terminal.account_info() is None
    assert terminal.last_error()[0] in (-10002, -10004)
    assert terminal.account_info() is None
    assert terminal.last_error() == (-10004, "No IPC connection")
    with RemoteServer(sim, port=port, token=TOKEN):
        assert terminal.initialize(), terminal.last_error()
        assert terminal.account_info() is not None
        terminal.shutdown()


def test_hung_remote_call_fails_as_recv_error_after_request_timeout(sim: Any) -> None:
    hang = sim.terminal.faults.hang("symbol_info")
    try:
        with RemoteServer(sim, port=0, token=TOKEN) as running:
            terminal = remote_backend(
                running.url, settings(call_timeout=0.2, connect_timeout=0.2), token=TOKEN
            )
            assert terminal.initialize()
            assert terminal.symbol_info("EURUSD") is None
            assert terminal.last_error()[0] == -10002
            assert hang.entered.is_set()
    finally:
        hang.release()


def test_shutdown_closes_the_link(remote: RemoteTerminal) -> None:
    assert remote.shutdown() is True
    assert remote.account_info() is None
    assert remote.last_error() == (-10004, "No IPC connection")


async def test_connector_runs_on_aiomt5_backend(server: RemoteServer, local: Any) -> None:
    backend = remote_backend(server.url, settings(), token=TOKEN)
    connector = AsyncMT5Connector(settings(testing=True, health_check=False), backend=backend)
    async with connector:
        info = await connector.get_symbol_info("EURUSD")
        rates = await connector.call("copy_rates_from_pos", "EURUSD", 16385, 0, 10)
    assert info == local.symbol_info("EURUSD")
    assert_same(rates, local.copy_rates_from_pos("EURUSD", 16385, 0, 10))


async def test_connector_sees_lost_link_as_connection_error_and_reconnects(sim: Any) -> None:
    first = RemoteServer(sim, port=0, token=TOKEN)
    first.start()
    port = first.port
    backend = remote_backend(first.url, settings(), token=TOKEN)
    connector = AsyncMT5Connector(settings(testing=True, health_check=False), backend=backend)
    async with connector:
        first.close()
        with pytest.raises(MT5ConnectionError):
            await connector.get_account_info()
        with RemoteServer(sim, port=port, token=TOKEN):
            await connector.disconnect()
            await connector.connect()
            assert (await connector.get_account_info()).login == sim.account_info().login


async def test_connector_runs_on_mt5linux_backend(classic_port: int, local: Any) -> None:
    backend = remote_backend(f"mt5linux://{HOST}:{classic_port}", settings())
    connector = AsyncMT5Connector(settings(testing=True, health_check=False), backend=backend)
    async with connector:
        info = await connector.get_symbol_info("GBPUSD")
    assert info == local.symbol_info("GBPUSD")


# =========================================================================== aiomt5 serve CLI


def _spawn_serve(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    code = "import sys; from aiomt5._remote import serve_main; sys.exit(serve_main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"aiomt5 serve did not start: {line!r} {err!r}")
    return process, int(line.split("aiomt5://", 1)[1].split()[0].rsplit(":", 1)[1])


def test_serve_main_serves_simulator_with_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    process, port = _spawn_serve(
        ["--backend", "sim", "--port", "0", "--token-file", str(token_file)], env
    )
    try:
        terminal = remote_backend(f"aiomt5://{HOST}:{port}", settings(), token=TOKEN)
        assert terminal.initialize(), terminal.last_error()
        assert terminal.symbol_info("EURUSD").name == "EURUSD"
        terminal.shutdown()
        refused = remote_backend(f"aiomt5://{HOST}:{port}", settings(), token="y" * 32)
        assert refused.initialize() is False
    finally:
        process.terminate()
        process.communicate()


def test_serve_main_reads_token_from_environment() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MT5_")}
    env["MT5_REMOTE_TOKEN"] = TOKEN
    process, port = _spawn_serve(["--backend", "sim", "--port", "0"], env)
    try:
        terminal = remote_backend(f"aiomt5://{HOST}:{port}", settings(), token=TOKEN)
        assert terminal.initialize(), terminal.last_error()
        terminal.shutdown()
    finally:
        process.terminate()
        process.communicate()


def test_serve_main_refuses_public_address_without_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = serve_main(["--backend", "sim", "--host", "0.0.0.0", "--port", "0"])
    assert status == 2
    assert "without a token" in capsys.readouterr().err


# =========================================================================== mt5linux://

MT5_SHIM = textwrap.dedent(
    f"""
    # MetaTrader5.py: the simulator standing in for the real package, for `python -m mt5linux`.
    import aiomt5.sim
    from aiomt5.sim import SimClock, SimTerminal

    aiomt5.sim.install(
        SimTerminal(seed={SEED}, clock=SimClock.fixed({START!r}), maxbars=200_000)
    )
    """
)
_STARTED = re.compile(r"server started on \[(?P<host>[^\]]*)\]:(?P<port>\d+)")


def start_mt5linux_server(shim_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """``python -m mt5linux`` (the package's own classic server) on an ephemeral loopback port.

    ``shim_dir`` holds a ``MetaTrader5.py`` that installs the simulator, as the real package
    would be installed in the Wine Python. The port comes from the server's log line.
    """
    pytest.importorskip("mt5linux")
    path = os.pathsep.join(p for p in (str(shim_dir), os.environ.get("PYTHONPATH", "")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "mt5linux", "--host", HOST, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert process.stderr is not None
    for line in process.stderr:  # ends (and fails below) if the server exits instead
        if found := _STARTED.search(line):
            # Keep reading its log, or a chatty server would block on a full pipe.
            drain = threading.Thread(target=process.stderr.read, daemon=True)
            drain.start()
            _drains[process.pid] = drain
            return process, int(found["port"])
    stop(process)
    pytest.fail(f"python -m mt5linux did not start (exit status {process.returncode})")


_drains: dict[int, threading.Thread] = {}


def stop(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()
    drain = _drains.pop(process.pid, None)
    if drain is not None:
        drain.join()
    if process.stderr is not None:
        process.stderr.close()


@pytest.fixture(scope="module")
def shim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("mt5-shim")
    (directory / "MetaTrader5.py").write_text(MT5_SHIM)
    return directory


@pytest.fixture
def classic_port(shim_dir: Path) -> Iterator[int]:
    process, port = start_mt5linux_server(shim_dir)
    try:
        yield port
    finally:
        stop(process)


@pytest.fixture
def classic(classic_port: int) -> Iterator[RemoteTerminal]:
    terminal = remote_backend(f"mt5linux://{HOST}:{classic_port}", settings())
    assert terminal.initialize(), terminal.last_error()
    yield terminal
    terminal.shutdown()


@pytest.fixture
def mt5linux_client(classic_port: int) -> Iterator[Any]:
    """The real mt5linux client package, its connection closed after the test."""
    mt5linux = pytest.importorskip("mt5linux")
    client = mt5linux.MetaTrader5(host=HOST, port=classic_port)
    yield client
    client._MetaTrader5__conn.close()  # mt5linux never closes its rpyc connection itself


def test_mt5linux_client_package_talks_to_simulator_server(
    mt5linux_client: Any, local: Any
) -> None:
    mt5 = mt5linux_client
    assert mt5.initialize()
    tick = mt5.symbol_info_tick("EURUSD")
    assert tuple(tick) == tuple(local.symbol_info_tick("EURUSD"))
    rates = mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_H1, 0, 10)
    assert rates.tobytes() == local.copy_rates_from_pos("EURUSD", 16385, 0, 10).tobytes()


def test_mt5linux_and_aiomt5_backends_share_one_server(
    classic_port: int, mt5linux_client: Any, local: Any
) -> None:
    theirs = mt5linux_client
    assert theirs.initialize()
    ours = remote_backend(f"mt5linux://{HOST}:{classic_port}", settings())
    assert ours.initialize()
    assert ours.symbol_info_tick("EURUSD") == tuple(theirs.symbol_info_tick("EURUSD"))
    ours.shutdown()


@pytest.mark.parametrize(("name", "args", "kwargs"), STRUCT_CALLS)
def test_mt5linux_struct_results_equal_local_simulator(
    classic: RemoteTerminal, local: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert_same(getattr(classic, name)(*args, **kwargs), getattr(local, name)(*args, **kwargs))


def test_mt5linux_backend_hands_the_connection_over_to_frames(classic: RemoteTerminal) -> None:
    assert classic._transport.handed_over  # type: ignore[attr-defined]


def test_mt5linux_backend_works_through_rpyc_where_it_cannot_hand_over(
    classic_port: int, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server whose connection is not a plain socket says no; calls then go through rpyc.
    source = helper_source() + "\ndef _aiomt5_can_hand_over(conn):\n    return False\n"
    monkeypatch.setattr("aiomt5._remote._mt5linux.helper_source", lambda: source)
    terminal = remote_backend(f"mt5linux://{HOST}:{classic_port}", settings())
    assert terminal.initialize(), terminal.last_error()
    try:
        assert not terminal._transport.handed_over  # type: ignore[attr-defined]
        for name, args, kwargs in STRUCT_CALLS[:4]:
            assert_same(getattr(terminal, name)(*args, **kwargs), getattr(local, name)(*args))
        for name, args in ARRAY_CALLS[:2]:
            assert_same(getattr(terminal, name)(*args), getattr(local, name)(*args))
    finally:
        terminal.shutdown()


@pytest.mark.parametrize(("name", "args"), ARRAY_CALLS)
def test_mt5linux_array_results_equal_local_simulator(
    classic: RemoteTerminal, local: Any, name: str, args: tuple[Any, ...]
) -> None:
    assert_same(getattr(classic, name)(*args), getattr(local, name)(*args))


def test_mt5linux_accepts_numpy_scalars_enums_and_datetimes(
    classic: RemoteTerminal, local: Any
) -> None:
    got = classic.copy_rates_from("EURUSD", Frame.H1, np.int64(1772409600), np.int32(24))
    assert_same(got, local.copy_rates_from("EURUSD", 16385, 1772409600, 24))
    aware = datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert_same(
        classic.copy_ticks_from("EURUSD", aware, np.uint16(10), -1),
        local.copy_ticks_from("EURUSD", aware, 10, -1),
    )


def test_mt5linux_symbol_is_sent_as_data_not_code(classic: RemoteTerminal, tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    # With mt5linux's own client this symbol would close the string and run open(...).
    symbol = f'EURUSD", 1, 0, 1) or open({str(marker)!r}, "w") or ("'
    assert classic.copy_rates_from_pos(symbol, 16385, 0, 1) is None
    assert classic.last_error()[0] < 0
    assert not marker.exists()
    assert classic.symbol_info_tick("EURUSD") is not None


def test_mt5linux_order_send_returns_nested_structs(classic: RemoteTerminal, local: Any) -> None:
    price = local.symbol_info_tick("EURUSD").ask
    request = {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "price": price}
    assert_same(classic.order_send(request), local.order_send(request))


def test_mt5linux_server_gone_fails_then_reports_no_connection(shim_dir: Path) -> None:
    process, port = start_mt5linux_server(shim_dir)
    terminal = remote_backend(f"mt5linux://{HOST}:{port}", settings())
    try:
        assert terminal.initialize()
    finally:
        stop(process)
    assert terminal.account_info() is None
    assert terminal.last_error()[0] in (-10002, -10004)
    assert terminal.initialize() is False
    assert terminal.last_error()[0] == -10004


# =========================================================================== process isolation


def hanging_sim() -> Any:
    """Backend factory for the child process: ``symbol_info`` never returns."""
    module = new_sim()
    module.terminal.faults.hang("symbol_info", times=None)
    return module


def child_terminal(hard_limit: float) -> ChildTerminal:
    tests_dir = str(Path(__file__).parent)
    path = os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    return ChildTerminal(f"{__name__}:hanging_sim", hard_limit=hard_limit, env=env)


def test_process_isolation_kills_wedged_child_and_restarts_it() -> None:
    terminal = child_terminal(hard_limit=0.5)
    try:
        assert terminal.initialize(), terminal.last_error()
        first = terminal.pid
        assert terminal.symbol_info("EURUSD") is None  # wedged: the child is killed
        assert terminal.last_error()[0] == -10002
        assert terminal.pid is None
        assert terminal.account_info() is None
        assert terminal.last_error() == (-10004, "No IPC connection")
        assert terminal.initialize(), terminal.last_error()
        assert terminal.pid not in (None, first)
        assert terminal.account_info() is not None
        assert terminal.starts == 2
    finally:
        terminal.close()
    assert terminal.pid is None


async def test_connector_recovers_from_wedged_call_in_process_isolation() -> None:
    terminal = child_terminal(hard_limit=0.5)
    connector = AsyncMT5Connector(settings(testing=True, health_check=False), backend=terminal)
    try:
        async with connector:
            with pytest.raises(MT5ConnectionError):
                await connector.get_symbol_info("EURUSD")
            await connector.disconnect()
            await connector.connect()
            assert (await connector.get_account_info()).login > 0
    finally:
        terminal.close()


def test_process_isolation_rejects_malformed_backend_spec() -> None:
    with pytest.raises(ValueError, match=r"package\.module:factory"):
        load_backend("no-colon-here")


# =========================================================================== MT5Pool


def pool_member(login: int, **overrides: Any) -> MT5Settings:
    fields: dict[str, Any] = {
        "login": login,
        "password": DEFAULT_PASSWORD,
        "server": DEFAULT_SERVER,
        "testing": True,
        "health_check": False,
        "max_retries": 1,
    }
    return settings(**{**fields, **overrides})


async def test_pool_gives_each_account_its_own_connector() -> None:
    logins = (DEFAULT_LOGIN, DEFAULT_LOGIN + 1)
    async with MT5Pool([pool_member(login) for login in logins]) as pool:
        assert pool.logins == logins
        for login in logins:
            assert (await pool.get(login).get_account_info()).login == login
        assert pool.get(logins[0]) is not pool.get(logins[1])
        stats = pool.stats()
    assert set(stats) == set(logins)
    assert all(s.calls > 0 for s in stats.values())


async def test_pool_members_in_child_processes_connect_and_close() -> None:
    children: list[ChildTerminal] = []

    def in_child(member: MT5Settings) -> object:
        children.append(child_terminal(hard_limit=30.0))
        return children[-1]

    logins = (DEFAULT_LOGIN, DEFAULT_LOGIN + 1)
    async with MT5Pool([pool_member(login) for login in logins], backend=in_child) as pool:
        for login in logins:
            assert (await pool.get(login).get_account_info()).login == login
        assert len({child.pid for child in children}) == 2
    assert all(child.pid is None for child in children)


async def test_pool_connect_failure_closes_every_member() -> None:
    members = [pool_member(DEFAULT_LOGIN), pool_member(DEFAULT_LOGIN + 1, password="wrong")]
    pool = MT5Pool(members)
    with pytest.raises(ExceptionGroup) as caught:
        await pool.connect()
    assert caught.group_contains(MT5LoginError)
    assert not pool.get(DEFAULT_LOGIN).is_connected()


class SimMembers:
    """A pool backend factory that keeps each member's simulator, for faults."""

    def __init__(self) -> None:
        self.terminals: dict[int, SimTerminal] = {}

    def __call__(self, member: MT5Settings) -> object:
        assert member.login is not None
        self.terminals[member.login] = terminal = SimTerminal(seed=SEED)
        return terminal


async def test_pool_hooks_see_every_members_events_with_its_login() -> None:
    seen: list[tuple[int, str]] = []
    logins = (DEFAULT_LOGIN, DEFAULT_LOGIN + 1)
    pool = MT5Pool(
        [pool_member(login) for login in logins],
        event_hooks=[lambda login, event: seen.append((login, event.kind))],
    )
    async with pool:
        assert pool.states() == dict.fromkeys(logins, ConnectionState.CONNECTED)
    for login in logins:
        assert (login, "state_changed") in seen


async def test_pool_brings_back_a_member_whose_supervisor_gave_up() -> None:
    sims = SimMembers()
    down, other = DEFAULT_LOGIN, DEFAULT_LOGIN + 1
    members = [pool_member(down, reconnect_max_retries=1), pool_member(other)]
    revived = asyncio.Event()
    connects: list[int] = []

    def on_event(login: int, event: ConnectorEvent) -> None:
        if isinstance(event, StateChanged) and event.new is ConnectionState.CONNECTED:
            connects.append(login)
            if connects.count(down) == 2:  # connected at start, then brought back
                revived.set()

    pool = MT5Pool(members, backend=sims, event_hooks=[on_event])
    async with pool:
        terminal = sims.terminals[down]
        # The terminal goes away for a while: four initialize() calls fail, more than the
        # member's own supervisor tries before giving up.
        terminal.faults.fail("initialize", -10003, times=4)
        terminal.faults.break_pipe()
        with pytest.raises(MT5ConnectionError):
            await pool.get(down).get_account_info()
        async with asyncio.timeout(10):
            await revived.wait()
        assert pool.states()[down] is ConnectionState.CONNECTED
        assert (await pool.get(down).get_account_info()).login == down
        assert pool.failures == {}
        assert pool.states()[other] is ConnectionState.CONNECTED


async def test_pool_without_require_all_starts_with_the_members_that_connect() -> None:
    sims = SimMembers()
    up, late, rejected = DEFAULT_LOGIN, DEFAULT_LOGIN + 1, DEFAULT_LOGIN + 2
    members = [pool_member(up), pool_member(late), pool_member(rejected, password="wrong")]
    pool = MT5Pool(members, backend=sims, require_all=False)
    connected = asyncio.Event()

    def on_event(login: int, event: ConnectorEvent) -> None:
        connected_now = isinstance(event, StateChanged) and event.new is ConnectionState.CONNECTED
        if login == late and connected_now:
            connected.set()

    pool.add_event_hook(on_event)
    # `late`'s terminal is still starting: its first two initialize() calls fail.
    sims.terminals[late].faults.fail("initialize", -10003, times=2)
    async with pool:
        assert pool.states()[up] is ConnectionState.CONNECTED
        async with asyncio.timeout(10):
            await connected.wait()
        assert set(pool.failures) == {rejected}  # a rejected login is not retried
        assert isinstance(pool.failures[rejected], MT5LoginError)
        assert pool.states()[rejected] is ConnectionState.DISCONNECTED


async def test_pool_without_require_all_fails_when_no_member_connects() -> None:
    members = [pool_member(DEFAULT_LOGIN + 1, password="wrong")]
    pool = MT5Pool(members, require_all=False)
    with pytest.raises(ExceptionGroup) as caught:
        await pool.connect()
    assert caught.group_contains(MT5LoginError)


def test_pool_refuses_duplicate_and_missing_logins() -> None:
    with pytest.raises(MT5ConfigurationError, match="twice"):
        MT5Pool([pool_member(DEFAULT_LOGIN), pool_member(DEFAULT_LOGIN)])
    with pytest.raises(MT5ConfigurationError, match="needs a login"):
        MT5Pool([settings()])


def test_pool_get_unknown_login_names_the_members() -> None:
    pool = MT5Pool([pool_member(DEFAULT_LOGIN)])
    with pytest.raises(MT5ConfigurationError, match=str(DEFAULT_LOGIN)):
        pool.get(1)


# =========================================================================== the wire format


def test_helper_sent_to_mt5linux_servers_is_python_37_syntax() -> None:
    # The helper runs in whatever Python hosts the mt5linux server (often an old one in Wine).
    tree = ast.parse(helper_source(), feature_version=(3, 7))
    assert any(isinstance(node, ast.FunctionDef) for node in tree.body)


def test_wire_round_trips_nested_values() -> None:
    value = {
        "a": [1, 2.5, "x", None, True, b"raw"],
        "b": (datetime(2026, 1, 2, 3, 4, 5, 6), datetime(2026, 1, 2, tzinfo=UTC)),
        "c": {"nested": ()},
    }
    assert decode(encode(value)) == value
    naive, aware = decode(encode(value))["b"]
    assert naive.tzinfo is None
    assert aware.utcoffset() == timedelta(0)


def test_wire_refuses_object_dtype_arrays() -> None:
    with pytest.raises(WireError, match="object"):
        decode(("a", "|O", (1,), b"\0" * 8), arrays=True)


def test_wire_refuses_array_whose_size_does_not_match() -> None:
    with pytest.raises(WireError, match="size"):
        decode(("a", "<f8", (2,), b"\0" * 8), arrays=True)


@pytest.mark.parametrize(
    "wire",
    [
        ("s", "Tick", (1,)),  # structs not allowed here
        ("a", "<f8", (1,), b"\0" * 8),  # arrays not allowed here
        ("zz", ()),
        ("t", "12"),  # a string is not a sequence of values here
        ("t", {"k": 1}),  # nor is a JSON object
        object(),
        (),
    ],
)
def test_wire_refuses_unexpected_data(wire: Any) -> None:
    with pytest.raises(WireError):
        decode(wire)


def test_wire_array_uses_its_out_of_band_buffer_once() -> None:
    array = np.arange(6, dtype="<i4").reshape(2, 3)
    buffers: list[Any] = []
    wire = encode((array, 7), buffers)
    assert wire == ("t", (("a", "<i4", (2, 3), 0), 7))
    received = [bytearray(buffers[0])]
    got, seven = decode(wire, arrays=True, buffers=received)
    assert seven == 7
    assert (got == array).all()
    assert got.flags.writeable
    with pytest.raises(WireError, match="missing buffer"):
        decode(wire, arrays=True, buffers=received)  # already used: never shared
    with pytest.raises(WireError, match="missing buffer"):
        decode(("a", "<i4", (1,), 3), arrays=True, buffers=[])


def test_wire_decodes_json_lists_like_tuples() -> None:
    value = {"when": datetime(2026, 1, 2, tzinfo=UTC), "items": (1, [2.5, "x"])}
    assert decode(json.loads(json.dumps(encode(value)))) == value


@pytest.mark.parametrize("poll", [True, False], ids=["poll", "select"])
def test_frame_reader_busy_polls_then_reads_every_frame(
    poll: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not poll:  # Windows has no select.poll: the reader falls back to select()
        monkeypatch.delattr(_wire._select, "poll")
    left, right = socket.socketpair()
    with left, right:
        reader = FrameReader(right, busy_poll=0.01)
        big = np.arange(100_000, dtype="<f8")
        buffers: list[Any] = []
        wire = encode(("one", big), buffers)
        sender = threading.Thread(target=send_frame, args=(left, wire, buffers))
        sender.start()  # 800 kB: more than the socket holds, so it is sent while we read
        message, received = reader.read(MAX_REPLY_BYTES, MAX_REPLY_BUFFERS)
        sender.join()
        send_frame(left, ["two"])
        assert (decode(message, arrays=True, buffers=received)[1] == big).all()
        assert reader.read(MAX_REPLY_BYTES, 0) == (["two"], [])
        # Nothing comes: the reader stops checking after busy_poll and sleeps in recv,
        # where the socket's timeout applies as usual.
        right.settimeout(0.01)
        with pytest.raises(TimeoutError):
            reader.read(MAX_REPLY_BYTES, 0)
        left.close()
        with pytest.raises(EOFError):
            FrameReader(right, busy_poll=0.01).read(MAX_REPLY_BYTES, 0)


def test_frame_reader_busy_polls_only_while_data_comes_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(_wire, "_time", SimpleNamespace(perf_counter=lambda: now[0]))
    checks: list[float] = []

    def readable(advance: float) -> Callable[[], bool]:
        def check() -> bool:  # the data is there, ``advance`` seconds after the wait began
            checks.append(advance)
            now[0] += advance
            return True

        return check

    left, right = socket.socketpair()
    with left, right:
        reader = FrameReader(right, busy_poll=1e-4)

        def next_frame() -> Any:
            send_frame(left, ["x"])
            return reader.read(MAX_REPLY_BYTES, 0)[0]

        reader._readable = readable(1.0)  # a slow peer: a second's wait
        assert next_frame() == ["x"]
        assert checks == [1.0]
        assert next_frame() == ["x"]  # no checking after a slow wait
        assert checks == [1.0]
        reader._readable = readable(0.0)  # that wait was quick: checking is worth it again
        assert next_frame() == ["x"]
        assert checks == [1.0, 0.0]


def test_wire_refuses_unknown_struct_type() -> None:
    with pytest.raises(WireError, match="struct"):
        decode(("s", "Evil", (1,)), STRUCT_TYPES)


class _BadTransport:
    is_open = True

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.closed = False

    def open(self) -> None:
        pass

    def call(self, name: str, args: Any, kwargs: Any) -> tuple[Any, list[Any] | None]:
        return self.reply, None

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    "reply",
    [
        ("ok", ("a", "|O", (1,), b"\0" * 8), (1, "Success")),
        ("ok", None),
        ("raise", "SystemExit", "bye", (1, "Success")),
        "ok",
    ],
)
def test_malformed_reply_is_a_protocol_error(reply: Any) -> None:
    transport = _BadTransport(reply)
    terminal = RemoteTerminal(transport, "test")
    assert terminal.copy_rates_from_pos("EURUSD", 1, 0, 1) is None
    assert terminal.last_error()[0] == REMOTE_PROTOCOL
    assert transport.closed


def test_tls_context_requires_certificate_files(tmp_path: Path) -> None:
    with pytest.raises((OSError, ssl.SSLError)):
        server_tls_context(str(tmp_path / "missing.pem"))


# =========================================================================== hostile peers


def test_absurd_datetime_offset_is_a_type_error_and_the_connection_survives(
    server: RemoteServer,
) -> None:
    absurd = ["dt", [2026, 3, 2, 10, 0, 0, 0], 10**9]  # a UTC offset of 31 years
    with raw_socket(server, TOKEN) as sock:
        send_frame(sock, ["copy_rates_from", ["t", ["EURUSD", 1, absurd, 10]], ["d", []]])
        reply, _ = FrameReader(sock).read(MAX_REPLY_BYTES, MAX_REPLY_BUFFERS)
        assert reply[:2] == ["raise", "TypeError"]
        send_frame(sock, ["version", ["t", []], ["d", []]])
        assert FrameReader(sock).read(MAX_REPLY_BYTES, MAX_REPLY_BUFFERS)[0][0] == "ok"


def test_token_quality_is_checked_for_public_addresses() -> None:
    weak = "a" * 40
    assert token_problem(weak, public=False) is None  # loopback: long enough
    problem = token_problem(weak, public=True)
    assert problem is not None
    assert "too weak" in problem
    assert weak not in problem
    assert token_problem(secrets.token_urlsafe(32), public=True) is None
    assert token_problem(secrets.token_hex(16), public=True) is None
    assert "too short" in str(token_problem("Ab1" * 5, public=True))


def test_public_address_without_tls_needs_insecure(sim: Any) -> None:
    strong = secrets.token_urlsafe(32)
    with pytest.raises(MT5ConfigurationError, match="--insecure"):
        RemoteServer(sim, host="192.0.2.1", port=0, token=strong)
    with pytest.raises(MT5ConfigurationError, match="too weak") as refused:
        RemoteServer(sim, host="192.0.2.1", port=0, token="a" * 40, insecure=True)
    assert "a" * 40 not in str(refused.value)


def test_serve_rejects_token_option_without_echoing_it() -> None:
    secret = "Sup3r-" + secrets.token_hex(8)
    for argv in (["serve", "--token", secret], ["serve", f"--token={secret}"]):
        result = subprocess.run(
            [sys.executable, "-m", "aiomt5", *argv], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert "--token" in result.stderr
        assert secret not in result.stdout + result.stderr


def test_serve_over_plain_refuses_tls_client_saying_so(sim: Any, tmp_path: Path) -> None:
    cert, _ = _self_signed(tmp_path)
    with RemoteServer(sim, port=0, token=TOKEN) as running:
        terminal = remote_backend(running.url, settings(remote_tls_ca=cert), token=TOKEN)
        assert terminal.initialize() is False
        code, text = terminal.last_error()
        assert code == REMOTE_PROTOCOL
        assert "unset remote_tls" in text


def test_throttle_spaces_checks_of_an_address_that_failed() -> None:
    throttle = _Throttle()
    assert throttle.slot("10.0.0.1", 0.0, 5.0) == 0.0  # no failures: at once
    throttle.done("10.0.0.1", False, 0.0)
    assert throttle.slot("10.0.0.2", 0.0, 5.0) == 0.0  # other addresses are not affected
    first = throttle.slot("10.0.0.1", 0.0, 5.0)
    assert first == pytest.approx(0.1)
    assert throttle.slot("10.0.0.1", 0.0, 5.0) is None  # one check at a time
    throttle.done("10.0.0.1", False, 0.1)
    assert throttle.slot("10.0.0.1", 0.1, 5.0) == pytest.approx(0.3)  # the delay doubled
    throttle.done("10.0.0.1", None, 0.1)  # that connection left before its turn
    assert throttle.slot("10.0.0.1", 0.1, 0.2) is None  # its turn is after its deadline
    assert throttle.slot("10.0.0.1", 0.3, 5.0) == pytest.approx(0.3)
    throttle.done("10.0.0.1", True, 0.3)  # the right token: forgiven
    assert throttle.slot("10.0.0.1", 0.3, 5.0) == 0.3


async def test_connector_retries_a_busy_server_and_never_sees_minus_6(sim: Any) -> None:
    with RemoteServer(sim, port=0, token=TOKEN, max_clients=1) as running:
        holder = raw_socket(running, TOKEN)
        backend = remote_backend(running.url, settings(), token=TOKEN)
        connector = AsyncMT5Connector(
            settings(testing=True, health_check=False, max_retries=3), backend=backend
        )
        with pytest.raises(MT5ServerBusyError):
            await connector.connect()
        assert running.refusals()["full"] == 3  # every attempt of the supervisor's
        holder.close()
        await asyncio.to_thread(until, lambda: running.connections()[1] == 0)
        await connector.connect()
        assert (await connector.get_account_info()).login == sim.account_info().login
        await connector.close()


async def test_pool_brings_back_a_member_whose_server_was_busy(sim: Any) -> None:
    sims = SimMembers()
    remote_login, local_login = DEFAULT_LOGIN, DEFAULT_LOGIN + 1
    with RemoteServer(sim, port=0, token=TOKEN, max_clients=1) as running:
        holder = raw_socket(running, TOKEN)

        def backends(member: MT5Settings) -> object:
            if member.login == remote_login:
                return remote_backend(running.url, member, token=TOKEN)
            return sims(member)

        connected = asyncio.Event()

        def on_event(login: int, event: ConnectorEvent) -> None:
            connecting = login == remote_login and isinstance(event, StateChanged)
            if connecting and event.new is ConnectionState.CONNECTED:
                connected.set()

        members = [pool_member(remote_login), pool_member(local_login)]
        pool = MT5Pool(members, backend=backends, require_all=False, event_hooks=[on_event])
        async with pool:
            assert isinstance(pool.failures[remote_login], MT5ServerBusyError)
            holder.close()
            async with asyncio.timeout(10):
                await connected.wait()
            assert pool.states()[remote_login] is ConnectionState.CONNECTED
            assert pool.failures == {}


def test_bounded_backend_slices_ticks_exactly_like_one_call(local: Any) -> None:
    assert local.symbol_select("EURUSD", True)
    bounded = BoundedBackend(new_sim(), threading.Lock(), 256 << 20)
    assert bounded.initialize()
    assert bounded.symbol_select("EURUSD", True)
    start = datetime(2026, 2, 23, 9, 30, 15, tzinfo=UTC)
    end = datetime(2026, 2, 27, 17, 0, 0, tzinfo=UTC)
    whole = local.copy_ticks_range("EURUSD", start, end, -1)
    assert len(whole) > 3 * SLICE_ROWS  # several slices
    assert bounded.copy_ticks_range("EURUSD", start, end, -1).tobytes() == whole.tobytes()
    counted = local.copy_ticks_from("EURUSD", start, 2 * SLICE_ROWS + 12345, -1)
    sliced = bounded.copy_ticks_from("EURUSD", start, 2 * SLICE_ROWS + 12345, -1)
    assert sliced.tobytes() == counted.tobytes()
    assert bounded.last_error() == (1, "Success")


def test_bounded_backend_refuses_more_than_max_reply_bytes(local: Any) -> None:
    bounded = BoundedBackend(new_sim(), threading.Lock(), 8 << 20)
    assert bounded.initialize()
    assert bounded.symbol_select("EURUSD", True)
    start = datetime(2026, 2, 2, tzinfo=UTC)
    assert bounded.copy_ticks_range("EURUSD", start, start + timedelta(days=20), -1) is None
    code, text = bounded.last_error()
    assert code == REMOTE_REPLY_TOO_LARGE
    assert "max_reply_bytes" in text
    assert "page_size" in text
    assert bounded.copy_ticks_from("EURUSD", start, 10**6, -1) is None
    assert bounded.last_error()[0] == REMOTE_REPLY_TOO_LARGE
    assert bounded.copy_rates_from_pos("EURUSD", 1, 0, 10**6) is None
    assert bounded.last_error()[0] == REMOTE_REPLY_TOO_LARGE


def test_bounded_backend_keeps_last_error_per_thread() -> None:
    bounded = BoundedBackend(new_sim(), threading.Lock(), 8 << 20)
    assert bounded.initialize()
    assert bounded.symbol_info("NO.SUCH") is None
    failed = bounded.last_error()
    seen: list[tuple[int, str]] = []
    worker = threading.Thread(target=lambda: seen.append(call_then_error(bounded)))
    worker.start()
    worker.join()
    assert seen == [(1, "Success")]
    assert bounded.last_error() == failed  # another client's call did not change it


def call_then_error(bounded: BoundedBackend) -> tuple[int, str]:
    bounded.version()
    return bounded.last_error()


def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait (in a thread) until ``condition()`` holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_no_peer_can_raise_an_uncaught_exception_in_a_server_thread(sim: Any) -> None:
    uncaught: list[threading.ExceptHookArgs] = []
    previous = threading.excepthook
    threading.excepthook = uncaught.append
    rng = random.Random(SEED)
    try:
        with RemoteServer(sim, port=0, token=TOKEN, handshake_timeout=1.0) as running:
            for _ in range(60):
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((HOST, running.port), timeout=2) as sock,
                ):
                    if rng.random() < 0.5:
                        sock.sendall(rng.randbytes(rng.randrange(1, 64)))
                    else:
                        client_handshake(sock, TOKEN)
                        sock.sendall(rng.randbytes(rng.randrange(1, 64)))
                    if rng.random() < 0.3:  # reset instead of closing
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            assert raw_call(running, ["version", ["t", []], ["d", []]])[0] == "ok"
    finally:
        threading.excepthook = previous
    assert uncaught == []


def test_authenticated_connections_use_tcp_keepalive(sim: Any) -> None:
    with RemoteServer(sim, port=0, token=TOKEN) as running, raw_socket(running, TOKEN):
        until(lambda: running.connections()[1] == 1)
        (served,) = running._clients  # the server's end of our connection
        assert served.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1


def test_bounded_backend_shares_one_budget_for_replies_held_at_once() -> None:
    bounded = BoundedBackend(new_sim(), threading.Lock(), 64 << 20, max_reply_memory=40 << 20)
    assert bounded.initialize()
    assert bounded.symbol_select("EURUSD", True)
    start = datetime(2026, 2, 23, tzinfo=UTC)
    first = bounded.copy_ticks_range("EURUSD", start, start + timedelta(days=5), -1)
    assert first.nbytes > 20 << 20  # more than half the budget, held until freed
    assert bounded.copy_ticks_range("EURUSD", start, start + timedelta(days=5), -1) is None
    code, text = bounded.last_error()
    assert code == REMOTE_REPLY_TOO_LARGE
    assert "other clients" in text
    del first  # sent (or its client dropped): its share comes back
    again = bounded.copy_ticks_range("EURUSD", start, start + timedelta(days=5), -1)
    assert again is not None


async def test_paged_ticks_halve_windows_the_server_refuses_as_too_large(
    sim: Any, local: Any
) -> None:
    start = datetime(2026, 2, 23, tzinfo=UTC)
    end = datetime(2026, 2, 27, 18, tzinfo=UTC)
    assert local.symbol_select("EURUSD", True)
    expected = local.copy_ticks_range("EURUSD", start, end, -1)
    # Pages of 100 000 ticks (6 MB) against a 2 MiB reply limit: each window is halved.
    with RemoteServer(sim, port=0, token=TOKEN, max_reply_bytes=2 << 20) as running:
        backend = remote_backend(running.url, settings(), token=TOKEN)
        connector = AsyncMT5Connector(settings(testing=True, health_check=False), backend=backend)
        async with connector:
            ticks = await connector.get_ticks("EURUSD", start, end, page_size=100_000)
    assert ticks.tobytes() == expected.tobytes()
