"""Vigil's optional C accelerator; the package works without it (pure Python)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vigil.engine._blockscan",
            ["src/vigil/engine/_blockscan.c"],
            extra_compile_args=["-O3"],
            optional=True,  # no compiler: the Python block scan is used
        ),
        Extension(
            "vigil.engine._batchwalk",
            ["src/vigil/engine/_batchwalk.c"],
            extra_compile_args=["-O3"],
            optional=True,  # no compiler: the Python walk of batches.Reader is used
        ),
    ]
)
