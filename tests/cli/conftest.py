"""The command line's fixture: `python -m lockstep` in a subprocess, on a fresh SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lockstep.config import ROOT


@pytest.fixture
def run(tmp_path):
    """run(*args, env=None) -> CompletedProcess of `python -m lockstep ARGS` on a temp database.

    `run.db` is the SQLite file, `run.env` the environment every call starts from.
    """
    db = tmp_path / "cli.db"
    base_env = {**os.environ, "LOCKSTEP_DATABASE_URL": f"sqlite:///{db}", "PYTHONPATH": str(ROOT)}

    def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "lockstep", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**base_env, **(env or {})},
            timeout=300,
        )

    _run.db, _run.env = db, base_env
    return _run
