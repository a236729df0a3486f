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
