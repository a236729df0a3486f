"""Exactly-once trading over a network that fails at the worst moments.

A relay between the ``aiomt5://`` client and ``aiomt5 serve`` cuts the connection as an
``order_send`` passes: before the request reaches the server (the order never ran), or after
the server ran it and before the reply comes back (it ran; the client cannot know). The real
supervisor reconnects; the trader reconciles each ambiguous send against the terminal and
re-sends only what it proved absent. Every order must then be in the terminal's history
exactly once. The default run is reduced (150 orders); ``-m soak`` sends 2000.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from _order_audit import audit_history
from aiomt5 import AsyncMT5Connector, Trader, new_tag
from aiomt5._mt5 import constants as c
from aiomt5._remote import RemoteServer, remote_backend
from aiomt5._settings import MT5Settings
from aiomt5.sim import SimClock, SimTerminal, make_module

HOST = "127.0.0.1"
TOKEN = "chaos-token-" + "5e6f7a8b" * 4
START = "2026-03-02T10:00:00Z"
ORDER_SEND = b'"order_send"'  # how an order_send request starts on the wire: ["order_send",...


class CuttingRelay:
    """A TCP relay that, when armed, cuts the next connection an ``order_send`` passes through.

    ``arm("request")`` drops that request and cuts the connection (the server never sees it);
    ``arm("reply")`` forwards it, lets the server run it, and cuts the connection when the reply
    comes back, discarding it. ``cuts`` counts what was done.
    """

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: str | None = None
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self.cuts: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def arm(self, where: str) -> None:
        with self._lock:
            self._armed = where

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection((HOST, self._target))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._links.append((client, upstream))
            lose_reply = threading.Event()
            threading.Thread(
                target=self._requests, args=(client, upstream, lose_reply), daemon=True
            ).start()
            threading.Thread(
                target=self._replies, args=(upstream, client, lose_reply), daemon=True
            ).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, lose_reply: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                with self._lock:
                    armed = self._armed if ORDER_SEND in chunk else None
                    if armed is not None:
                        self._armed = None
                        self.cuts[armed] += 1
                if armed == "request":
                    break
                if armed == "reply":
                    lose_reply.set()
                upstream.sendall(chunk)
        self._cut(client, upstream)

    def _replies(
        self, upstream: socket.socket, client: socket.socket, lose_reply: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while (chunk := upstream.recv(65536)) and not lose_reply.is_set():
                client.sendall(chunk)
        self._cut(client, upstream)

    @staticmethod
    def _cut(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            self._cut(*link)


@contextlib.contextmanager
def relayed_server(terminal: SimTerminal) -> Iterator[CuttingRelay]:
    with RemoteServer(make_module(terminal), port=0, token=TOKEN) as server:
        relay = CuttingRelay(server.port)
        try:
            yield relay
        finally:
            relay.close()


async def run_remote_order_soak(orders: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    netting = c.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    terminal = SimTerminal(seed=seed, clock=SimClock.fixed(START), margin_mode=netting)
    outcomes: Counter[str] = Counter()
    net: Counter[str] = Counter()
    volumes = {"EURUSD": 0.01, "GBPUSD": 0.01, "USDJPY": 0.01, "US30": 0.1}
    with relayed_server(terminal) as relay:
        settings = MT5Settings(_env_file=None, backend="sim", testing=True, call_timeout=5.0)
        backend = remote_backend(f"aiomt5://{HOST}:{relay.port}", settings, token=TOKEN)
        async with AsyncMT5Connector(settings, backend=backend) as mt5:
            trader = Trader(mt5, settle=0)
            sent: set[str] = set()
            for _ in range(orders):
                roll = rng.random()
                if roll < 0.10:
                    relay.arm("request")
                elif roll < 0.20:
                    relay.arm("reply")
                symbol = rng.choice(tuple(volumes))
                # Random sides, kept within 3 steps per symbol so the margin stays affordable.
                buy = rng.random() < 0.5 if abs(net[symbol]) < 3 else net[symbol] < 0
                net[symbol] += 1 if buy else -1
                side = trader.buy if buy else trader.sell
                result = await side(symbol, volumes[symbol], resend_if_absent=True, tag=new_tag())
                outcomes["reconciled" if result.reconciled else "answered"] += 1
                outcomes["resent"] += result.attempts - 1
                sent.add(result.tag)
            outcomes.update(await audit_history(trader, sent))
            outcomes["reconnects"] = mt5.get_connection_stats().reconnects
        outcomes.update({f"cut_{where}": n for where, n in relay.cuts.items()})
    return outcomes


def check(outcomes: Counter[str], orders: int) -> None:
    assert outcomes["answered"] + outcomes["reconciled"] == orders
    assert (outcomes["duplicates"], outcomes["lost"], outcomes["unexpected"]) == (0, 0, 0)
    # Each cut was a real ambiguous send: a lost reply reconciles to "it ran", a lost request
    # to "absent", then one re-send; and each cut cost a reconnect.
    assert outcomes["reconciled"] == outcomes["cut_reply"] > 0
    assert outcomes["resent"] == outcomes["cut_request"] > 0
    assert outcomes["reconnects"] >= outcomes["cut_reply"] + outcomes["cut_request"]


async def test_remote_orders_survive_cut_connections_exactly_once() -> None:
    check(await run_remote_order_soak(150, seed=11), 150)


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_remote_order_soak_2000_survives_cut_connections_exactly_once() -> None:
    check(await run_remote_order_soak(2000, seed=2026), 2000)
