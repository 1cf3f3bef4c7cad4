"""Elastic detection rules: the model, loaders, index patterns and exceptions."""

from vigil.rules.loaders import RuleSet, bundled_rules, load_rules
from vigil.rules.model import Rule

__all__ = ["Rule", "RuleSet", "bundled_rules", "load_rules"]
