"""Shared fixtures: offline mode, the quick profile with runs in a temporary folder, real data.

The engine tests train the quick profile's very small encoder (params/profiles/quick.yaml) on the
prepared data in data/ (`make data`, or `nbforget data`, writes it).
"""
from __future__ import annotations

import os

# Set before anything imports torch or huggingface_hub: both read these once, at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The quick model's matrices are 64 wide: a second intra-op thread only adds synchronisation, and
# when the suite shares the CPU with other processes a waiting thread slows every operation down
# several times. One thread also fixes the summation order, so runs in subprocesses compare
# bitwise with runs in this process. Set OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from nbforget.config import REPO_ROOT, RunConfig, load_config  # noqa: E402

QUICK_PROFILE = REPO_ROOT / "params" / "profiles" / "quick.yaml"
MANIFEST = REPO_ROOT / "data" / "MANIFEST.json"


@pytest.fixture(scope="session")
def data_ready() -> Path:
    """The prepared data folder; a clear failure (not a skip) when it is missing."""
    if not MANIFEST.exists():
        pytest.fail(f"{MANIFEST} is missing: the engine tests need prepared data; run `make data` "
                    "(or `nbforget data`) first", pytrace=False)
    return MANIFEST.parent


def make_quick_config(runs_dir: Path, overrides: dict | None = None) -> RunConfig:
    return load_config(QUICK_PROFILE, {**(overrides or {}), "runs_dir": str(runs_dir)})


@pytest.fixture
def quick_config(tmp_path, data_ready):
    """Factory: ``quick_config(overrides=None, runs_dir=None)`` -> the quick profile's RunConfig with
    its runs under this test's temporary folder (or `runs_dir`)."""

    def make(overrides: dict | None = None, runs_dir: Path | None = None) -> RunConfig:
        return make_quick_config(runs_dir or tmp_path / "runs", overrides)

    return make


class QuickRuns:
    """Complete quick-profile runs, one per strategy, made on first request and shared by the tests
    of a session (each run costs seconds; several tests read the same run)."""

    def __init__(self, runs_dir: Path) -> None:
        self.config = make_quick_config(runs_dir)
        self.paths: dict[tuple[str, object], Path] = {}

    def path(self, strategy: str, order=None) -> Path:
        from nbforget.engine import run_strategy

        key = (strategy, repr(order))
        if key not in self.paths:
            self.paths[key] = run_strategy(self.config, strategy, order=order, progress=False)
        return self.paths[key]


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory, data_ready) -> QuickRuns:
    return QuickRuns(tmp_path_factory.mktemp("quick-runs"))
