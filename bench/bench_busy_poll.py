"""Benchmark: what busy-polling buys a framed round trip on loopback (``_wire.BUSY_POLL``).

An echo server process and this client exchange one small frame at a time
(``send_frame``/``FrameReader``, the code ``aiomt5 serve`` and its clients run), with
``busy_poll`` off and on at each end, in interleaved rounds. Baseline: both ends sleeping in
``recv`` (``busy_poll=0``). Also measured: the server's CPU per frame for a sparse client (one
frame every 2 ms), where the adaptive reader stops checking, against one that checks before
every ``recv``.

Run: ``.venv/bin/python bench/bench_busy_poll.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import statistics
import time
from multiprocessing.connection import Connection

import _results
from aiomt5._remote import _wire
from aiomt5._remote._wire import BUSY_POLL, FrameReader, send_frame

FRAMES = 2000
SPARSE_FRAMES = 200
SPARSE_GAP = 0.002


def echo_server(
    listener: socket.socket, busy_poll: float, always: bool, report: Connection
) -> None:
    """Echo frames until the client leaves; report this process's CPU seconds."""
    if always:  # check for data before every recv, however long the client stays away
        _wire._QUICK = 10**9
    sock, _ = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = FrameReader(sock, busy_poll)
    cpu = time.process_time()
    try:
        while True:
            message, _ = reader.read(1 << 20, 0)
            send_frame(sock, message)
    except EOFError:
        pass
    report.send(time.process_time() - cpu)


def round_trip(
    server_poll: float, client_poll: float, frames: int, gap: float, always: bool = False
) -> tuple[float, float]:
    """Median round trip (seconds) and the server's CPU seconds per frame."""
    listener = socket.create_server(("127.0.0.1", 0))
    receive, report = mp.Pipe(duplex=False)
    server = mp.Process(target=echo_server, args=(listener, server_poll, always, report))
    server.start()
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = FrameReader(sock, client_poll)
    message = ["symbol_info_tick", ["EURUSD"], {}]
    times = []
    for i in range(frames + 50):
        if gap:
            time.sleep(gap)
        start = time.perf_counter()
        send_frame(sock, message)
        reader.read(1 << 20, 0)
        if i >= 50:  # warm-up
            times.append(time.perf_counter() - start)
    sock.close()
    server_cpu = receive.recv()
    server.join()
    listener.close()
    return statistics.median(times), server_cpu / (frames + 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    _results.add_option(parser)
    options = parser.parse_args()
    modes = {
        "both sleep in recv (baseline)": (0.0, 0.0),
        "server busy-polls": (BUSY_POLL, 0.0),
        "client busy-polls": (0.0, BUSY_POLL),
        "both busy-poll (aiomt5)": (BUSY_POLL, BUSY_POLL),
    }
    tight: dict[str, list[float]] = {name: [] for name in modes}
    sparse_modes = {
        "both sleep in recv (baseline)": (0.0, False),
        "busy-poll after every frame": (BUSY_POLL, True),
        "adaptive busy-poll (aiomt5)": (BUSY_POLL, False),
    }
    sparse: dict[str, list[float]] = {name: [] for name in sparse_modes}
    for _ in range(options.rounds):
        for name, (server_poll, client_poll) in modes.items():
            tight[name].append(round_trip(server_poll, client_poll, FRAMES, 0.0)[0])
        for name, (poll, always) in sparse_modes.items():
            sparse[name].append(round_trip(poll, poll, SPARSE_FRAMES, SPARSE_GAP, always)[1])

    print(f"framed round trip on loopback, back to back, median of {options.rounds} rounds")
    base = statistics.median(tight["both sleep in recv (baseline)"])
    for name, values in tight.items():
        value = statistics.median(values)
        print(f"  {name:<32}{value * 1e6:8.1f} us   {value / base:5.2f}x baseline")
    print(f"one frame every {SPARSE_GAP * 1e3:.0f} ms: server CPU per frame")
    sparse_base = statistics.median(sparse["both sleep in recv (baseline)"])
    for name, values in sparse.items():
        value = statistics.median(values)
        print(f"  {name:<32}{value * 1e6:8.1f} us   {value / sparse_base:5.2f}x baseline")

    def rows(times: dict[str, list[float]], base: float) -> list[dict[str, object]]:
        return [
            {"mode": name, "us": statistics.median(v) * 1e6, "ratio": statistics.median(v) / base}
            for name, v in times.items()
        ]

    columns = [("mode", "Mode"), ("us", "µs"), ("ratio", "÷ baseline")]
    tight_rows, sparse_rows = rows(tight, base), rows(sparse, sparse_base)
    _results.write(
        options.json,
        tables={
            "round_trip": _results.table(columns, tight_rows),
            "server_cpu": _results.table(columns, sparse_rows),
        },
        figures={
            **{f"round_trip.{row['mode']}": row["ratio"] for row in tight_rows},
            **{f"server_cpu.{row['mode']}": row["ratio"] for row in sparse_rows},
        },
    )


if __name__ == "__main__":
    main()
