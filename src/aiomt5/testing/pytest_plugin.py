"""The aiomt5 pytest plugin: fixtures ``aiomt5_sim`` and ``aiomt5_connector``.

Loaded in every pytest run where aiomt5 is installed, so it imports almost nothing until a fixture
is used. It works with pytest-asyncio in strict mode (the default) and in auto mode.

``@pytest.mark.aiomt5_sim(seed=1, start="2026-03-02T10:00Z", symbol_suffix=".m",
margin_mode=..., maxbars=...)`` configures the simulated terminal of a test. Without a marker,
the ``MT5_SIM_SEED``, ``MT5_SIM_START`` and ``MT5_SIM_SYMBOL_SUFFIX`` settings (environment or
``.env``) apply when set; the clock stays frozen (``MT5_SIM_SPEED`` is for running clocks, and a
test moves its clock itself), at ``aiomt5.testing.DEFAULT_START`` unless ``MT5_SIM_START`` says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from . import sim_settings, sim_terminal

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the connector fixture needs pytest-asyncio
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

_MARKER = "aiomt5_sim"
_MARKER_HELP = (
    f"{_MARKER}(seed=0, start=..., symbol_suffix='', margin_mode=None, maxbars=100000): "
    "configure the simulated terminal of the aiomt5_sim / aiomt5_connector fixtures"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin's marker."""
    config.addinivalue_line("markers", _MARKER_HELP)


#: Settings that configure the fixtures' terminal, and the ``sim_terminal`` option each sets.
_FROM_SETTINGS = {"sim_seed": "seed", "sim_start": "start", "sim_symbol_suffix": "symbol_suffix"}


def _from_settings() -> dict[str, Any]:
    from aiomt5._settings import MT5Settings  # keeps the plugin import light

    try:
        settings = MT5Settings()
    except ValueError as exc:  # pydantic's ValidationError
        msg = f"the aiomt5 fixtures read the MT5_* settings, and they are invalid: {exc}"
        raise pytest.UsageError(msg) from None
    return {
        option: getattr(settings, field)
        for field, option in _FROM_SETTINGS.items()
        if field in settings.model_fields_set
    }


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(_MARKER)
    options = _from_settings()
    if marker is None:
        return options
    if marker.args:
        msg = f"@pytest.mark.{_MARKER} takes keyword arguments only (seed=..., start=...)"
        raise pytest.UsageError(msg)
    return {**options, **marker.kwargs}


@pytest.fixture
def aiomt5_sim(request: pytest.FixtureRequest) -> Any:
    """A fresh, seeded ``aiomt5.sim.SimTerminal`` with a frozen clock the test controls."""
    return sim_terminal(**_options(request))


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def aiomt5_connector(aiomt5_sim: Any) -> AsyncIterator[Any]:
        """An ``AsyncMT5Connector`` connected to ``aiomt5_sim``, in testing mode; closed after."""
        from aiomt5._connector import AsyncMT5Connector

        connector = AsyncMT5Connector(sim_settings(), backend=aiomt5_sim)
        await connector.connect()
        try:
            yield connector
        finally:
            await connector.close()

else:  # pragma: no cover

    @pytest.fixture
    def aiomt5_connector() -> Any:
        """Needs pytest-asyncio."""
        pytest.fail("the aiomt5_connector fixture needs pytest-asyncio: pip install pytest-asyncio")
