"""The shipped pytest plugin, run in isolated pytest sessions with pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _strict_asyncio_ini(pytester: pytest.Pytester) -> None:
    """Every inner session runs pytest-asyncio in strict mode, its default for users."""
    pytester.makeini(
        """
        [pytest]
        asyncio_mode = strict
        asyncio_default_fixture_loop_scope = function
        asyncio_default_test_loop_scope = function
        filterwarnings = error
        """
    )


def test_fixtures_work_in_pytest_asyncio_strict_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_sim_is_fresh_and_frozen(aiomt5_sim):
            assert aiomt5_sim.initialize()
            first = aiomt5_sim.clock.now()
            assert aiomt5_sim.clock.now() == first
            assert aiomt5_sim.positions_total() == 0

        @pytest.mark.asyncio
        async def test_connector_is_connected(aiomt5_connector, aiomt5_sim):
            account = await aiomt5_connector.get_account_info()
            assert account.login == 5001234
            assert aiomt5_connector.is_connected()
            assert aiomt5_sim.thread_names  # the connector called the fixture's terminal
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)


def test_marker_configures_the_terminal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.aiomt5_sim(seed=9, symbol_suffix=".m", start="2027-01-05T10:00:00Z")
        def test_marked(aiomt5_sim):
            assert aiomt5_sim.seed == 9
            assert aiomt5_sim.initialize()
            assert aiomt5_sim.symbol_info("EURUSD.m").name == "EURUSD.m"
            assert aiomt5_sim.clock.datetime().year == 2027
        """
    )
    result = pytester.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=1)


def test_fixtures_honour_the_mt5_sim_settings_and_the_marker_wins(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MT5_SIM_SEED", "4")
    monkeypatch.setenv("MT5_SIM_START", "2027-01-06T10:00:00Z")
    pytester.makepyfile(
        """
        import pytest

        def test_from_settings(aiomt5_sim):
            assert aiomt5_sim.seed == 4
            assert aiomt5_sim.clock.frozen  # tests move their clock themselves
            assert aiomt5_sim.clock.datetime().isoformat() == "2027-01-06T10:00:00+00:00"

        @pytest.mark.aiomt5_sim(seed=9)
        def test_marker_wins(aiomt5_sim):
            assert aiomt5_sim.seed == 9
            assert aiomt5_sim.clock.datetime().day == 6
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)


def test_marker_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*aiomt5_sim(seed=0*"])


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_needs_fixture(aiomt5_sim):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:aiomt5")
    result.assert_outcomes(errors=1)


def test_plugin_import_is_light(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_nothing_heavy_loaded():
            heavy = {"aiomt5.sim", "numpy", "pandas", "polars"} & set(sys.modules)
            assert heavy == set()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
