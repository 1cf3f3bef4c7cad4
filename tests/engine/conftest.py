"""Fixtures of the engine tests."""

from __future__ import annotations

import pytest

from vigil.rules.loaders import load_rules


@pytest.fixture(scope="session")
def prebuilt_rules(shared) -> list:
    """All of Elastic's prebuilt rules (rules and building blocks), loaded once per
    session as ``vigil scan --rules`` loads them."""
    base = shared / "detection-rules"
    return load_rules([base / "rules", base / "rules_building_block"]).rules
