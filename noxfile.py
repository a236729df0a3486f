"""Developer sessions: `nox` runs lint, typing and the tests on every installed Python."""

from __future__ import annotations

import os
import pathlib
import shutil

import nox

nox.options.sessions = ["lint", "typing", "tests"]
nox.options.reuse_existing_virtualenvs = True

# pyenv's shims only run the active versions; put every installed version's bin on PATH so nox
# finds python3.12, python3.13... themselves.
for _bin in sorted(pathlib.Path.home().glob(".pyenv/versions/3.*/bin")):
    os.environ["PATH"] = f"{_bin}{os.pathsep}{os.environ['PATH']}"

# 3.10 reached end of life in October 2026 and lacks asyncio.timeout/TaskGroup: not supported.
PYTHONS = [v for v in ("3.11", "3.12", "3.13") if shutil.which(f"python{v}")]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (pass `-- -m soak` for the long soaks)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.15")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict on the package and the typed API usage."""
    session.install("-e", ".[test]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict."""
    session.install("-e", ".[docs]")
    session.run("zensical", "build", "--strict", "--clean")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark script in bench/ (ratios against in-run baselines)."""
    session.install("-e", ".[test]")
    for script in sorted(pathlib.Path("bench").glob("bench_*.py")):
        session.run("python", str(script))


# Real third-party MetaTrader5 code (tests/peers/README.md): each library without its
# MetaTrader5 requirement (no Linux wheel), driven on the simulator and through aiomt5.compat.
# Pinned: a new release is checked on purpose, not discovered by a red CI run.
_PEERS = {
    "pdmt5": ("3.11", ["pdmt5==1.2.3"], ["pandas>=3", "pydantic"], "run_pdmt5.py"),
    "aiomql": (
        "3.12",
        ["aiomql==4.0.14"],
        ["pandas-ta", "mplfinance", "pytz", "six"],
        "run_aiomql.py",
    ),
}


@nox.session(python=["3.11", "3.12"])
@nox.parametrize("peer", sorted(_PEERS))
def peers(session: nox.Session, peer: str) -> None:
    """Run a published MetaTrader5 library's code on aiomt5 (needs PyPI)."""
    python, packages, deps, script = _PEERS[peer]
    if session.python != python:
        session.skip(f"{peer} runs on Python {python}")
    session.install("-e", ".")
    session.install("--no-deps", *packages)
    session.install(*deps)
    for mode in ("sim", "compat"):
        session.run("python", f"tests/peers/{script}", mode)
