"""PEP 562 lazy exports: a package lists ``name -> module`` and imports a module on first attribute use,
so ``import dfq_sam_plugin.runtime`` does not import torch, NNCF or OpenVINO before they are needed."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    def __getattr__(name: str) -> object:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name], package), name)

    def __dir__() -> list[str]:
        return sorted(table)

    return __getattr__, __dir__
