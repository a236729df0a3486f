"""terminal.faults: scripted and random faults, and that none fire unless asked."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from aiomt5.sim import SimClock, SimTerminal

NOW = "2026-03-04T12:00:00Z"


@pytest.fixture
def term() -> SimTerminal:
    t = SimTerminal(seed=3, clock=SimClock.fixed(NOW))
    assert t.initialize()
    return t


def test_no_fault_fires_unless_asked(term: SimTerminal) -> None:
    for _ in range(200):
        assert term.terminal_info() is not None
    assert term.faults.fired == []


@pytest.mark.parametrize("code", [-10001, -10002, -10004, -10005, -1, -3])
def test_fail_returns_the_failure_value_with_the_code(term: SimTerminal, code: int) -> None:
    term.faults.fail("symbol_info_tick", code)
    assert term.symbol_info_tick("EURUSD") is None
    assert term.last_error()[0] == code
    assert term.symbol_info_tick("EURUSD") is not None


def test_fail_uses_the_failure_value_of_the_function(term: SimTerminal) -> None:
    term.faults.fail("*", -10001, times=3)
    assert term.symbol_select("EURUSD", True) is False
    assert term.version() == (0, 0, "")
    assert term.terminal_info() is None
    assert term.terminal_info() is not None


def test_last_error_and_shutdown_never_fault(term: SimTerminal) -> None:
    term.faults.fail("*", -10001, times=None)
    assert term.last_error() == (1, "Success")
    assert term.shutdown() is True


def test_broken_pipe_lasts_until_initialize_succeeds(term: SimTerminal) -> None:
    term.faults.break_pipe()
    for _ in range(3):
        assert term.account_info() is None
        assert term.last_error() == (-10004, "No IPC connection")
    assert term.initialize()
    assert term.account_info() is not None


def test_break_pipe_on_fails_with_recv_error_then_no_connection(term: SimTerminal) -> None:
    term.faults.break_pipe_on("copy_rates_from_pos")
    assert term.copy_rates_from_pos("EURUSD", 1, 0, 10) is None
    assert term.last_error() == (-10002, "IPC recv failed")
    assert term.terminal_info() is None
    assert term.last_error() == (-10004, "No IPC connection")


def test_trade_server_drop_and_return(term: SimTerminal) -> None:
    term.faults.drop_trade_server()
    assert term.terminal_info().connected is False
    assert term.copy_rates_from_pos("EURUSD", 1, 0, 10) is None
    assert term.last_error() == (-1, "Terminal: Call failed")
    assert term.account_info() is None
    assert term.initialize() is False
    assert term.last_error() == (-10005, "IPC timeout")
    term.faults.restore_trade_server()
    assert term.initialize()
    assert term.terminal_info().connected is True
    assert term.copy_rates_from_pos("EURUSD", 1, 0, 10) is not None


def test_hang_blocks_the_calling_thread_until_released(term: SimTerminal) -> None:
    hang = term.faults.hang("symbol_info_tick")
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(term.symbol_info_tick("EURUSD")))
    worker.start()
    assert hang.entered.wait(5)
    assert results == []
    assert worker.is_alive()
    hang.release()
    worker.join(5)
    assert results
    assert results[0] is not None


def test_hang_does_not_block_other_threads(term: SimTerminal) -> None:
    hang = term.faults.hang("copy_rates_from_pos")
    worker = threading.Thread(target=lambda: term.copy_rates_from_pos("EURUSD", 1, 0, 5))
    worker.start()
    assert hang.entered.wait(5)
    assert term.terminal_info() is not None  # the terminal lock is not held while hung
    term.faults.release_all()
    worker.join(5)
    assert not worker.is_alive()


def test_reject_login(term: SimTerminal) -> None:
    term.faults.reject_login()
    assert term.initialize(login=5001234, password="Demo-Pass-1") is False
    assert term.last_error() == (-6, "Terminal: Authorization failed")
    term.faults.reject_login(-7)
    assert term.initialize(login=5001234, password="Demo-Pass-1") is False
    assert term.last_error() == (
        -7,
        "Unsupported authorization mode, OTP or certificate password needed",
    )
    term.faults.clear()
    assert term.initialize(login=5001234, password="Demo-Pass-1")


def test_latency_uses_a_seeded_distribution(term: SimTerminal) -> None:
    drawn: list[float] = []

    def draw(rng) -> float:
        drawn.append(rng.random())
        return 0.0001

    term.faults.latency("terminal_info", draw)
    term.terminal_info()
    term.terminal_info()
    again = SimTerminal(seed=3, clock=SimClock.fixed(NOW))
    again.initialize()
    again_drawn: list[float] = []
    again.faults.latency("terminal_info", lambda rng: again_drawn.append(rng.random()) or 0.0001)
    again.terminal_info()
    again.terminal_info()
    assert drawn == again_drawn


def test_random_faults_are_reproducible_and_at_the_rate() -> None:
    def run(seed: int) -> list[tuple[str, str]]:
        t = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
        t.initialize()
        t.faults.random(0.1, seed=seed, kinds=("ipc_send", "call_failed", "trade_server"))
        for _ in range(2000):
            if t.terminal_info() is None and t.last_error()[0] == -10004:
                t.initialize()
        return [(r.function, r.kind) for r in t.faults.fired]

    first = run(9)
    assert first == run(9)
    assert first != run(10)
    assert 150 < len(first) < 250


def test_random_trade_server_outage_heals_itself() -> None:
    t = SimTerminal(seed=1, clock=SimClock.fixed(NOW))
    t.initialize()
    t.faults.random(1.0, seed=0, kinds=("trade_server",), outage_calls=5)
    t.terminal_info()
    t.faults.random(0.0)
    states = [t.terminal_info().connected for _ in range(8)]
    assert states[0] is False
    assert states[-1] is True


def test_lose_reply_executes_then_fails(term: SimTerminal) -> None:
    term.faults.lose_reply("symbol_select")
    assert term.symbol_select("NZDJPY", True) is False
    assert term.last_error() == (-10002, "IPC recv failed")
    assert term.symbol_info("NZDJPY").select is True  # the terminal did act on it


def test_clear_releases_and_restores(term: SimTerminal) -> None:
    hang = term.faults.hang("*")
    term.faults.drop_trade_server()
    term.faults.clear()
    assert hang.released
    assert term.terminal_info().connected is True


def test_random_rejects_bad_arguments(term: SimTerminal) -> None:
    with pytest.raises(ValueError, match="rate"):
        term.faults.random(1.5)
    with pytest.raises(ValueError, match="kinds"):
        term.faults.random(0.1, kinds=("nope",))  # type: ignore[arg-type]


# ------------------------------------------------------------------ hold_gil: wait like MetaTrader5


def longest_pause_of_another_thread(call: object) -> float:
    """Run ``call()`` while another thread notes the time every millisecond; its longest gap."""
    stamps: list[float] = []
    stop = threading.Event()

    def note() -> None:
        while not stop.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    noter = threading.Thread(target=note)
    noter.start()
    while len(stamps) < 5:
        time.sleep(0.001)
    call()  # type: ignore[operator]
    stop.set()
    noter.join()
    return max(b - a for a, b in itertools.pairwise(stamps))


@pytest.mark.parametrize("hold_gil", [True, False])
def test_hold_gil_stops_every_other_thread_while_a_call_waits(hold_gil: bool) -> None:
    term = SimTerminal(seed=3, clock=SimClock.fixed(NOW), hold_gil=hold_gil)
    assert term.initialize()
    term.faults.latency("terminal_info", 0.2)
    pause = longest_pause_of_another_thread(term.terminal_info)
    if hold_gil:
        assert pause >= 0.18
    else:
        assert pause < 0.1


def test_hold_gil_hang_can_still_be_released_from_another_thread() -> None:
    term = SimTerminal(seed=3, clock=SimClock.fixed(NOW), hold_gil=True)
    assert term.initialize()
    hang = term.faults.hang("symbol_info_tick")
    results: list[object] = []
    caller = threading.Thread(target=lambda: results.append(term.symbol_info_tick("EURUSD")))
    caller.start()
    assert hang.entered.wait(5)
    hang.release()  # gets the GIL between two chunks of the hang
    caller.join(5)
    assert results
    assert results[0] is not None


def test_ipc_seconds_delay_every_call_that_reaches_the_terminal() -> None:
    term = SimTerminal(seed=3, clock=SimClock.fixed(NOW), hold_gil=True, ipc_seconds=0.05)
    assert term.initialize()
    started = time.perf_counter()
    term.last_error()  # answered by the module itself: no IPC
    assert time.perf_counter() - started < 0.04
    assert longest_pause_of_another_thread(term.terminal_info) >= 0.04
    with pytest.raises(ValueError, match="ipc_seconds"):
        SimTerminal(ipc_seconds=2.0)
