"""A synchronous script: aiomt5's blocking ``MT5Connector``, no event loop in sight.

The same core as ``AsyncMT5Connector`` (worker thread, timeouts, supervisor, exactly-once
trading) behind plain method calls, with the seed's names. Run it with::

    python examples/sync_script.py                                # the built-in simulator
    python examples/sync_script.py --backend aiomt5://host:18812  # a remote terminal (+ token)

On the simulator the market clock is pinned to a Wednesday so the example trades on any day.
"""

from __future__ import annotations

import argparse

from aiomt5 import MT5Connector, OrderType, PositionType
from aiomt5.sim import SimClock, SimTerminal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sim", help="sim, aiomt5://host:port, ...")
    args = parser.parse_args()
    if args.backend == "sim":
        connector = MT5Connector(
            backend=SimTerminal(seed=1, clock=SimClock.fixed("2026-03-04T12:00:00Z"))
        )
    else:
        connector = MT5Connector(backend=args.backend)

    with connector as mt5:
        account = mt5.get_account_info()
        print(f"account {account.login}: {account.currency} {account.balance:,.2f}")
        symbol = mt5.find_symbol("EURUSD")
        bars = mt5.get_rates(symbol, "H1", count=24, closed_only=True)
        print(f"{len(bars)} closed H1 bars of {symbol}, last close {bars['close'][-1]}")

        # Size the trade so that a stop 30 points away risks at most 50 in account currency.
        info = mt5.get_symbol_info(symbol)
        price = mt5.call("symbol_info_tick", symbol).ask
        sl = price - 30 * info.point
        volume = mt5.volume_for_risk(symbol, OrderType.BUY, price, sl, 50.0)
        opened = mt5.buy(symbol, volume, sl=sl, comment="sync example")
        print(f"bought {volume} {symbol}: {opened.retcode_name}")

        position = mt5.positions(symbol)[0]
        assert position.type is PositionType.BUY
        print(mt5.positions_frame()[["symbol", "type", "volume", "sl"]].to_string(index=False))
        closed = mt5.close_position(position)
        print(f"closed: {closed.retcode_name}, positions now: {len(mt5.positions())}")


if __name__ == "__main__":
    main()
