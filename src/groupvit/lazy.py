"""Lazy package exports (PEP 562): a package lists `name -> submodule` and imports the submodule on first use.

Reading a config imports groupvit.model.config, groupvit.train.config and groupvit.evaluation.config on every CLI
call and at every Snakemake DAG build; eager package imports would pull in torch, timm and scikit-learn each time.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module-level `__getattr__` for `package`, resolving each exported name from its submodule."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
