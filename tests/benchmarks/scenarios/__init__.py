"""The benchmark's scenarios, one module each: every module of this package is one, found by
its presence. A scenario module defines

    NAME      the letter ``--scenarios`` takes ("a")
    TITLE     one line, for the progress log
    FULL      its settings: ``{NAME: (events, aggregates)}``, plus any other it reads
    QUICK     the same, for ``--quick`` (a tenth of the data, short caps)
    USES_AWS  whether it uses the moto server (such scenarios run after the others: once up,
              the server stays up to the end and slows PostgreSQL pours down)
    run(ctx)  measures, keeps its raw results in ``ctx.results[NAME]`` and appends its rows to
              ``ctx.rows`` (see tests/benchmarks/context.py)
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any


def _discover() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if module.NAME in found:
            twin = found[module.NAME].__name__
            raise RuntimeError(f"{module.__name__} and {twin} are both scenario {module.NAME}")
        found[module.NAME] = module
    return dict(sorted(found.items()))


ALL = _discover()
"""NAME -> scenario module, in NAME order."""


def sizes(quick: bool) -> dict[str, Any]:
    """Every scenario's settings, chosen or not (b measures a's size too)."""
    merged = {
        key: value
        for scenario in ALL.values()
        for key, value in (scenario.QUICK if quick else scenario.FULL).items()
    }
    # The scenarios' own sizes first, then the other settings, as the JSON has always had them.
    return dict(sorted(merged.items(), key=lambda item: item[0] not in ALL))
