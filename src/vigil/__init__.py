"""Vigil: run Elastic Security detection rules anywhere."""

__version__ = "0.1.0"
