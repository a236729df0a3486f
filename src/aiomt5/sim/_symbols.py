"""The simulated broker's instruments: a retail MT5 demo server with a USD account.

Forty-odd instruments in the shapes real brokers configure them: FX majors, crosses and exotics in
FOREX calc mode, metals, energies, index CFDs on their exchanges' hours, crypto trading around the
clock, an exchange-traded stock that prints last prices, and a CFD stock. Some are deliberately
awkward so code above the simulator can be tested against them: FOK-only and IOC-only filling,
instant and exchange execution, a close-only and a long-only symbol.

Prices are anchored to late-2026 levels. FX crosses are derived from one table of USD values, so
the catalogue's quotes are arbitrage-free at their base prices, and FX swaps follow the two
currencies' policy rates. Sessions are in server time, which the simulator keeps in UTC.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Final

from aiomt5._mt5 import constants as c

from ._spec import SymbolSpec, TradingHours

__all__ = ["CATALOGUE", "find_spec", "with_suffix"]

#: US dollars per unit of each currency (crosses are derived from it).
_USD_VALUE: Final = {
    "USD": 1.0,
    "EUR": 1.1650,
    "GBP": 1.3350,
    "AUD": 0.6580,
    "NZD": 0.5760,
    "JPY": 1 / 153.40,
    "CHF": 1 / 0.7960,
    "CAD": 1 / 1.3920,
    "MXN": 1 / 18.350,
    "ZAR": 1 / 17.280,
    "RUB": 1 / 81.20,
}
#: Policy rates in percent a year; the FX swaps are their differentials less the broker's markup.
_POLICY_RATE: Final = {
    "USD": 3.75,
    "EUR": 2.00,
    "GBP": 3.75,
    "AUD": 3.60,
    "NZD": 2.25,
    "JPY": 0.75,
    "CHF": 0.00,
    "CAD": 2.25,
    "MXN": 7.00,
    "ZAR": 6.75,
    "RUB": 16.50,
}
_SWAP_MARKUP: Final = 0.5  # percent a year taken by the broker on each side
_CURRENCY_NAMES: Final = {
    "USD": "US Dollar",
    "EUR": "Euro",
    "GBP": "Great Britain Pound",
    "AUD": "Australian Dollar",
    "NZD": "New Zealand Dollar",
    "JPY": "Japanese Yen",
    "CHF": "Swiss Franc",
    "CAD": "Canadian Dollar",
    "MXN": "Mexican Peso",
    "ZAR": "South African Rand",
    "RUB": "Russian Ruble",
}

_MON_FRI: Final = range(c.DAY_OF_WEEK_MONDAY, c.DAY_OF_WEEK_SATURDAY)


def _hm(hours: int, minutes: int = 0) -> int:
    return hours * 60 + minutes


def _weekday_sessions(*spans: tuple[int, int]) -> TradingHours:
    """The same intraday ``(start, end)`` spans every Monday to Friday."""
    return TradingHours(tuple((day, start, end) for day in _MON_FRI for start, end in spans))


def _globex_hours() -> TradingHours:
    """CME Globex as a CFD broker runs it: Sunday 23:00 to Friday 22:00 UTC, 22:00-23:00 halt."""
    sessions = [(c.DAY_OF_WEEK_SUNDAY, _hm(23), 1440)]
    for day in _MON_FRI:
        sessions.append((day, 0, _hm(22)))
        if day != c.DAY_OF_WEEK_FRIDAY:
            sessions.append((day, _hm(23), 1440))
    return TradingHours(tuple(sessions))


_FX_HOURS: Final = TradingHours.weekdays()
_METALS_HOURS: Final = TradingHours.weekdays(daily_break=60)
_US_HOURS: Final = _globex_hours()
_EUREX_HOURS: Final = _weekday_sessions((_hm(1, 15), _hm(21)))
_ICE_UK_HOURS: Final = _weekday_sessions((_hm(1), _hm(21)))
#: Osaka: day session 09:00-15:45 JST and night session 17:00-06:00 JST, in UTC.
_OSAKA_HOURS: Final = _weekday_sessions((0, _hm(6, 45)), (_hm(8), _hm(21)))
_NASDAQ_HOURS: Final = _weekday_sessions((_hm(14, 30), _hm(21)))
_CRYPTO_HOURS: Final = TradingHours.always()

_FOK: Final = 1
_IOC: Final = 2


def _cross_price(base: str, quote: str, digits: int) -> float:
    return round(_USD_VALUE[base] / _USD_VALUE[quote], digits)


def _fx_swap_points(base: str, quote: str, price: float, digits: int, long: bool) -> float:
    """Daily swap in points of a long (or short) position from the interest-rate differential."""
    held, lent = (base, quote) if long else (quote, base)
    rate = _POLICY_RATE[held] - _POLICY_RATE[lent] - _SWAP_MARKUP
    return round(price * rate / 100 / 360 * 10.0**digits, 2)


def _forex(
    base: str,
    quote: str,
    *,
    group: str,
    spread: int,
    volatility: float,
    ticks_per_minute: float,
    **overrides: Any,
) -> SymbolSpec:
    """An FX pair; price, digits, swaps and description follow from its two currencies."""
    name = base + quote
    digits = 3 if quote in ("JPY", "RUB") else 5
    price = _cross_price(base, quote, digits)
    fields: dict[str, Any] = {
        "name": name,
        "description": f"{_CURRENCY_NAMES[base]} vs {_CURRENCY_NAMES[quote]}",
        "path": f"Forex\\{group}\\{name}",
        "category": "Forex",
        "currency_base": base,
        "currency_profit": quote,
        "currency_margin": base,
        "digits": digits,
        "contract_size": 100_000.0,
        "calc_mode": c.SYMBOL_CALC_MODE_FOREX,
        "spread": spread,
        "swap_long": _fx_swap_points(base, quote, price, digits, long=True),
        "swap_short": _fx_swap_points(base, quote, price, digits, long=False),
        "hours": _FX_HOURS,
        "base_price": price,
        "volatility": volatility,
        "ticks_per_minute": ticks_per_minute,
        "volume_max": 100.0 if group == "Majors" else 50.0,
    }
    fields.update(overrides)
    return SymbolSpec(**fields)


def _majors() -> list[SymbolSpec]:
    # (base, quote, spread points, annual volatility)
    rows = [
        ("EUR", "USD", 8, 0.070),
        ("GBP", "USD", 12, 0.080),
        ("USD", "JPY", 10, 0.100),
        ("USD", "CHF", 14, 0.075),
        ("AUD", "USD", 10, 0.095),
        ("USD", "CAD", 15, 0.065),
        ("NZD", "USD", 18, 0.100),
    ]
    # Instant execution, as on MetaQuotes' demo server: a market order names its price (within
    # `deviation`) and may use any filling, Return included (the official docs' examples do).
    return [
        _forex(
            base,
            quote,
            group="Majors",
            spread=spread,
            volatility=vol,
            ticks_per_minute=60.0,
            exemode=c.SYMBOL_TRADE_EXECUTION_INSTANT,
        )
        for base, quote, spread, vol in rows
    ]


def _minors() -> list[SymbolSpec]:
    rows = [
        ("EUR", "GBP", 15, 0.060),
        ("EUR", "JPY", 20, 0.095),
        ("GBP", "JPY", 30, 0.110),
        ("EUR", "AUD", 25, 0.085),
        ("EUR", "CAD", 25, 0.070),
        ("EUR", "NZD", 35, 0.090),
        ("GBP", "AUD", 35, 0.095),
        ("GBP", "CAD", 35, 0.080),
        ("AUD", "JPY", 20, 0.120),
        ("AUD", "CAD", 25, 0.080),
        ("AUD", "CHF", 25, 0.095),
        ("AUD", "NZD", 25, 0.060),
        ("NZD", "JPY", 25, 0.120),
        ("NZD", "CAD", 30, 0.085),
        ("CAD", "JPY", 25, 0.100),
        ("CHF", "JPY", 30, 0.090),
    ]
    specs = [
        _forex(base, quote, group="Minors", spread=spread, volatility=vol, ticks_per_minute=20.0)
        for base, quote, spread, vol in rows
    ]
    # Instant execution with FOK only, as brokers still configure a few pairs, so requotes and
    # filling validation can be exercised.
    instant: dict[str, Any] = {"exemode": c.SYMBOL_TRADE_EXECUTION_INSTANT, "filling_mode": _FOK}
    specs.append(
        _forex(
            "EUR",
            "CHF",
            group="Minors",
            spread=20,
            volatility=0.055,
            ticks_per_minute=20.0,
            stops_level=10,
            **instant,
        )
    )
    specs.append(
        _forex(
            "GBP",
            "CHF",
            group="Minors",
            spread=35,
            volatility=0.085,
            ticks_per_minute=20.0,
            stops_level=10,
            **instant,
        )
    )
    return specs


def _exotics() -> list[SymbolSpec]:
    exotic: dict[str, Any] = {
        "group": "Exotics",
        "ticks_per_minute": 10.0,
        "volume_max": 20.0,
        "margin_rate": 2.0,
        "stops_level": 50,
        "freeze_level": 20,
        "filling_mode": _IOC,
    }
    return [
        _forex("USD", "MXN", spread=450, volatility=0.130, **exotic),
        _forex("USD", "ZAR", spread=600, volatility=0.150, **exotic),
        # Sanctioned currency: existing positions may only be closed.
        _forex(
            "USD",
            "RUB",
            spread=300,
            volatility=0.180,
            trade_mode=c.SYMBOL_TRADE_MODE_CLOSEONLY,
            **exotic,
        ),
    ]


def _metals() -> list[SymbolSpec]:
    common: dict[str, Any] = {
        "category": "Metals",
        "currency_profit": "USD",
        "hours": _METALS_HOURS,
        "ticks_per_minute": 50.0,
        "stops_level": 10,
        "volume_max": 50.0,
    }
    return [
        SymbolSpec(
            name="XAUUSD",
            description="Gold vs US Dollar",
            path="Metals\\XAUUSD",
            currency_base="XAU",
            currency_margin="XAU",
            digits=2,
            contract_size=100.0,
            calc_mode=c.SYMBOL_CALC_MODE_FOREX,
            spread=20,
            swap_long=-48.5,
            swap_short=21.3,
            base_price=4085.00,
            volatility=0.15,
            **common,
        ),
        SymbolSpec(
            name="XAGUSD",
            description="Silver vs US Dollar",
            path="Metals\\XAGUSD",
            currency_base="XAG",
            currency_margin="USD",
            digits=3,
            contract_size=5000.0,
            calc_mode=c.SYMBOL_CALC_MODE_CFDLEVERAGE,
            spread=25,
            swap_long=-6.2,
            swap_short=1.9,
            exemode=c.SYMBOL_TRADE_EXECUTION_INSTANT,
            filling_mode=_FOK,
            base_price=50.850,
            volatility=0.28,
            **common,
        ),
        SymbolSpec(
            name="XPTUSD",
            description="Platinum vs US Dollar",
            path="Metals\\XPTUSD",
            currency_base="XPT",
            currency_margin="USD",
            digits=2,
            contract_size=100.0,
            calc_mode=c.SYMBOL_CALC_MODE_CFDLEVERAGE,
            margin_rate=2.0,
            spread=300,
            swap_long=-16.0,
            swap_short=3.5,
            volume_min=0.1,
            volume_step=0.1,
            base_price=1580.00,
            volatility=0.26,
            **(common | {"ticks_per_minute": 15.0}),
        ),
    ]


def _energies() -> list[SymbolSpec]:
    common: dict[str, Any] = {
        "category": "Energies",
        "currency_base": "USD",
        "currency_profit": "USD",
        "currency_margin": "USD",
        "digits": 3,
        "contract_size": 1000.0,
        "calc_mode": c.SYMBOL_CALC_MODE_CFDLEVERAGE,
        "filling_mode": _IOC,
        "volume_max": 50.0,
        "stops_level": 20,
        "swap_long": -9.5,
        "swap_short": 2.8,
        "swap_rollover3days": c.DAY_OF_WEEK_FRIDAY,
        "hours": _US_HOURS,
        "volatility": 0.35,
        "ticks_per_minute": 30.0,
    }
    return [
        SymbolSpec(
            name="USOIL",
            description="US Crude Oil (WTI) Cash",
            path="Energies\\USOIL",
            spread=30,
            base_price=61.450,
            **common,
        ),
        SymbolSpec(
            name="UKOIL",
            description="UK Brent Oil Cash",
            path="Energies\\UKOIL",
            spread=35,
            base_price=65.200,
            **common,
        ),
    ]


def _indices() -> list[SymbolSpec]:
    def index(
        name: str, description: str, currency: str, digits: int, spread: int, price: float,
        calc_mode: int, hours: TradingHours, **overrides: Any,
    ) -> SymbolSpec:  # fmt: skip
        fields: dict[str, Any] = {
            "name": name,
            "description": description,
            "path": f"Indices\\{name}",
            "category": "Indices",
            "currency_base": currency,
            "currency_profit": currency,
            "currency_margin": currency,
            "digits": digits,
            "contract_size": 1.0,
            "calc_mode": calc_mode,
            # Index CFDs carry no leverage of their own: 5% initial margin (1:20).
            "margin_rate": 0.05 if calc_mode != c.SYMBOL_CALC_MODE_CFDLEVERAGE else 1.0,
            "filling_mode": _IOC,
            "volume_min": 0.1,
            "volume_step": 0.1,
            "volume_max": 100.0,
            "spread": spread,
            "stops_level": 100,
            "swap_mode": c.SYMBOL_SWAP_MODE_INTEREST_CURRENT,
            "swap_long": -6.0,
            "swap_short": -1.5,
            "swap_rollover3days": c.DAY_OF_WEEK_FRIDAY,
            "hours": hours,
            "base_price": price,
            "volatility": 0.18,
            "ticks_per_minute": 40.0,
        }
        fields.update(overrides)
        return SymbolSpec(**fields)

    cfdindex, cfd = c.SYMBOL_CALC_MODE_CFDINDEX, c.SYMBOL_CALC_MODE_CFD
    return [
        index("US30", "Dow Jones Industrial Average Cash", "USD", 1, 30, 47250.0, cfdindex,
              _US_HOURS),
        index("US500", "S&P 500 Index Cash", "USD", 2, 50, 6815.00, cfdindex, _US_HOURS),
        index("NAS100", "Nasdaq 100 Index Cash", "USD", 2, 150, 25140.00, cfdindex, _US_HOURS,
              volatility=0.22),
        index("GER40", "Germany 40 Index Cash", "EUR", 2, 120, 24180.00, cfd, _EUREX_HOURS),
        index("UK100", "UK 100 Index Cash", "GBP", 2, 100, 9710.00, cfd, _ICE_UK_HOURS,
              volatility=0.14),
        index("JP225", "Japan 225 Index Cash", "JPY", 1, 80, 50120.0,
              c.SYMBOL_CALC_MODE_CFDLEVERAGE, _OSAKA_HOURS, volume_min=1.0, volume_step=1.0,
              volume_max=500.0, volatility=0.22),
    ]  # fmt: skip


def _crypto() -> list[SymbolSpec]:
    def coin(
        base: str, description: str, digits: int, spread: int, price: float,
        volatility: float, ticks_per_minute: float, **overrides: Any,
    ) -> SymbolSpec:  # fmt: skip
        name = base + "USD"
        fields: dict[str, Any] = {
            "name": name,
            "description": f"{description} vs US Dollar",
            "path": f"Crypto\\{name}",
            "category": "Crypto",
            "currency_base": base,
            "currency_profit": "USD",
            "currency_margin": "USD",
            "digits": digits,
            "contract_size": 1.0,
            "calc_mode": c.SYMBOL_CALC_MODE_CFDLEVERAGE,
            # The account leverage divided by five: 1:20 on a 1:100 account.
            "margin_rate": 5.0,
            "spread": spread,
            "stops_level": 100,
            "swap_mode": c.SYMBOL_SWAP_MODE_INTEREST_CURRENT,
            "swap_long": -20.0,
            "swap_short": -20.0,
            "swap_rollover3days": c.DAY_OF_WEEK_FRIDAY,
            "hours": _CRYPTO_HOURS,
            "base_price": price,
            "volatility": volatility,
            "ticks_per_minute": ticks_per_minute,
            "volume_max": 20.0,
        }
        fields.update(overrides)
        return SymbolSpec(**fields)

    return [
        coin("BTC", "Bitcoin", 2, 3500, 98450.00, 0.50, 80.0),
        coin("ETH", "Ethereum", 2, 250, 3420.00, 0.65, 70.0, volume_max=200.0),
        coin("LTC", "Litecoin", 2, 15, 94.50, 0.70, 40.0, volume_min=0.1, volume_step=0.1,
             volume_max=1000.0, margin_rate=10.0),
        # No shorting on this one: buys only (closing a long stays possible).
        coin("XRP", "Ripple", 5, 350, 2.31500, 0.75, 50.0, volume_min=10.0, volume_step=1.0,
             volume_max=100_000.0, margin_rate=10.0, trade_mode=c.SYMBOL_TRADE_MODE_LONGONLY),
    ]  # fmt: skip


def _stocks() -> list[SymbolSpec]:
    shares: dict[str, Any] = {
        "category": "Stocks",
        "currency_base": "USD",
        "currency_profit": "USD",
        "currency_margin": "USD",
        "digits": 2,
        "contract_size": 1.0,
        "volume_min": 1.0,
        "volume_step": 1.0,
        "hours": _NASDAQ_HOURS,
        "exchange": "NASDAQ",
        "ticks_per_minute": 30.0,
        "swap_rollover3days": c.DAY_OF_WEEK_FRIDAY,
    }
    return [
        # Traded on the exchange itself: last prices and volumes, fully paid, no swaps, and
        # close-by is not offered for exchange execution.
        SymbolSpec(
            name="AAPL",
            description="Apple Inc.",
            path="Stocks\\NASDAQ\\AAPL",
            isin="US0378331005",
            calc_mode=c.SYMBOL_CALC_MODE_EXCH_STOCKS,
            exemode=c.SYMBOL_TRADE_EXECUTION_EXCHANGE,
            chart_mode=c.SYMBOL_CHART_MODE_LAST,
            has_last=True,
            order_mode=63,
            volume_max=10_000.0,
            spread=2,
            swap_mode=c.SYMBOL_SWAP_MODE_DISABLED,
            swap_long=0.0,
            swap_short=0.0,
            base_price=272.40,
            volatility=0.28,
            **shares,
        ),
        SymbolSpec(
            name="NVDA",
            description="NVIDIA Corporation (CFD)",
            path="Stocks\\CFD\\NVDA",
            isin="US67066G1040",
            calc_mode=c.SYMBOL_CALC_MODE_CFD,
            margin_rate=0.2,
            filling_mode=_IOC,
            volume_max=1000.0,
            spread=5,
            swap_mode=c.SYMBOL_SWAP_MODE_INTEREST_CURRENT,
            swap_long=-7.5,
            swap_short=-3.0,
            base_price=186.20,
            volatility=0.50,
            **shares,
        ),
    ]


CATALOGUE: Final[tuple[SymbolSpec, ...]] = (
    *_majors(),
    *_minors(),
    *_exotics(),
    *_metals(),
    *_energies(),
    *_indices(),
    *_crypto(),
    *_stocks(),
)
"""Every instrument the simulated broker offers, majors first (the Market Watch order)."""

_BY_NAME: Final = {spec.name: spec for spec in CATALOGUE}


def find_spec(name: str, specs: Iterable[SymbolSpec] | None = None) -> SymbolSpec | None:
    """The instrument called exactly ``name`` (case sensitive, like MT5), or None.

    Args:
        name: Symbol name, suffix included.
        specs: Where to look; the catalogue when omitted.
    """
    if specs is None:
        return _BY_NAME.get(name)
    return next((spec for spec in specs if spec.name == name), None)


def with_suffix(specs: Iterable[SymbolSpec], suffix: str) -> tuple[SymbolSpec, ...]:
    """Rename every instrument the way brokers tag account types: ``EURUSD`` -> ``EURUSD.m``.

    The last element of each path is renamed too (``Forex\\Majors\\EURUSD.m``); currencies are
    unchanged, so conversion pairs are found by adding the same suffix.

    Args:
        specs: The instruments to rename.
        suffix: Appended to every name, e.g. ``".m"``, ``"pro"`` or ``"#"``; may be empty.

    Raises:
        ValueError: The suffix contains a character that would break paths or group filters
            (backslash, comma, ``*``) or whitespace.
    """
    if any(ch in suffix for ch in "\\,*") or any(ch.isspace() for ch in suffix):
        msg = f"symbol suffix {suffix!r} may not contain '\\', ',', '*' or whitespace; try '.m'"
        raise ValueError(msg)
    return tuple(
        dataclasses.replace(
            spec,
            name=spec.name + suffix,
            path=spec.path + suffix if spec.path.endswith(spec.name) else spec.path,
        )
        for spec in specs
    )
