"""Shared test fixtures: where the read-only reference material lives."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# One rule cache (vigil.rules.cache) for the run, the commands it starts included, and
# never the user's: the first load of a rule set in a run is checked afresh.
os.environ["VIGIL_CACHE_DIR"] = tempfile.mkdtemp(prefix="vigil-test-cache-")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("reference material (../shared beside the repository) is not present")
    return SHARED


@pytest.fixture(scope="session")
def prebuilt_rules(shared) -> list:
    """All of Elastic's prebuilt rules (rules and building blocks), loaded once per
    session as ``vigil scan --rules`` loads them; tests that change a rule copy it."""
    from vigil.rules.loaders import load_rules

    base = shared / "detection-rules"
    return load_rules([base / "rules", base / "rules_building_block"]).rules
