"""The results table: one :class:`Row` per measure, its rendering and the missed targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Row:
    scenario: str
    measure: str
    ours: float | None
    baseline: float | None
    unit: str = ""
    target: str = "-"
    """``">= 20"`` / ``"<= 1.2"`` on the ratio ours / baseline, or ``"-"`` (information)."""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline in (None, 0):
            return None
        return self.ours / self.baseline  # type: ignore[operator]

    @property
    def met(self) -> bool | None:
        if self.target == "-":
            return None
        if self.ratio is None:
            return False
        op, bound = self.target.split()
        return self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in JSON_KEYS}


JSON_KEYS = ("scenario", "measure", "ours", "baseline", "unit", "ratio", "target", "met", "note")
HEADER = ("scenario", "measure", "this project", "reference/baseline", "ratio", "target", "met?")


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "MB":
        return f"{value:,.1f} MB"
    if value >= 100:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:,.2f} {unit}".strip()


def _cells(row: Row) -> tuple[str, ...]:
    ratio = "n/a" if row.ratio is None else f"{row.ratio:.2f}x"
    target = "-" if row.target == "-" else f"{row.target}x"
    met = {None: "-", True: "yes", False: "NO"}[row.met]
    if row.met is False and row.ours is None:
        met = "NO (not measured)"
    ours, baseline = _number(row.ours, row.unit), _number(row.baseline, row.unit)
    return (row.scenario, row.measure, ours, baseline, ratio, target, met)


def render(rows: Sequence[Row]) -> str:
    lines = [HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def fmt(line: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            + " |"
        )

    out = [fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt(line) for line in lines[1:]]
    return "\n".join(out)


def verdicts(rows: Sequence[Row]) -> list[str]:
    out = []
    for row in rows:
        if row.met is not False:
            continue
        label = f"{row.scenario}: {row.measure}"
        if row.ratio is None:
            out.append(f"MISSED {label}: not measured ({row.note or 'see the log above'})")
            continue
        op, bound = row.target.split()
        factor = float(bound) / row.ratio if op == ">=" else row.ratio / float(bound)
        direction = "faster" if op == ">=" else "smaller"
        out.append(
            f"MISSED {label}: {row.ratio:.2f}x, target {row.target}x "
            f"(needs {factor:.1f}x {direction})" + (f"; {row.note}" if row.note else "")
        )
    return out


def notes(rows: Sequence[Row]) -> list[str]:
    """The notes of the rows not already listed by :func:`verdicts`."""
    return [
        f"  {row.scenario}: {row.measure}: {row.note}"
        for row in rows
        if row.note and row.met is not False
    ]
