"""W8's curve as a figure: each cost per record (or per query) against the table's size.

Drawn with matplotlib (the ``bench`` extra) on its non-interactive Agg backend into
``docs/images/performance-w8.png``; the figures of the run before the engine's speed-ups, when
recorded, are drawn dashed beside the current ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from .targets import Phases, figure_of, w8_phase, w8_sizes

__all__ = ("MEMORY_TARGET_BYTES", "curve", "draw_w8")

#: The target of bytes held per loaded record, drawn on the memory panel.
MEMORY_TARGET_BYTES = 600

#: (label, W8 phase kind, figure, divided by the table's size) of the CPU panel, in µs.
CPU_CURVES = (
    ("insert_many, per record", "insert_many", "CPU us/record", False),
    ("cold open, per record", "open", "CPU us/record", False),
    ("unindexed scan, per record scanned", "scan", "median op CPU us", True),
    ("indexed find, per query", "find", "median op CPU us", False),
)


def curve(phases: Phases, kind: str, figure: str, per_record: bool, sizes: list[int]) -> list[Any]:
    """The figure of W8's ``kind`` phase at each size (divided by the size if ``per_record``)."""
    values: list[Any] = []
    for records in sizes:
        value = figure_of(phases, w8_phase(kind, records), figure)
        values.append(None if value is None else value / records if per_record else value)
    return values


def draw_w8(now: Phases, before: Phases | None, path: Path) -> bool:
    """Draw the curve into ``path``; False (nothing drawn) when W8 did not run."""
    sizes = w8_sizes(now)
    if not sizes:
        return False
    figure, (cpu_axes, memory_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    runs: list[tuple[str, Phases, str]] = [("now", now, "-")]
    if before is not None:
        runs.append(("before", before, "--"))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, kind, figure_name, per_record), color in zip(CPU_CURVES, colors, strict=False):
        for run, phases, style in runs:
            run_sizes = w8_sizes(phases)
            values = curve(phases, kind, figure_name, per_record, run_sizes)
            points = [(n, v) for n, v in zip(run_sizes, values, strict=True) if v is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                cpu_axes.plot(xs, ys, style, marker="o", color=color, label=f"{label} ({run})")
    for run, phases, style in runs:
        run_sizes = w8_sizes(phases)
        values = curve(phases, "open", "held bytes/record", False, run_sizes)
        points = [(n, v) for n, v in zip(run_sizes, values, strict=True) if v is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            memory_axes.plot(xs, ys, style, marker="o", color=colors[4], label=f"held ({run})")
    memory_axes.axhline(MEMORY_TARGET_BYTES, color="gray", linestyle=":", label="target")
    cpu_axes.set(
        xscale="log",
        yscale="log",
        xlabel="records in the table",
        ylabel="CPU time, µs (process, SimCord included)",
        title="CPU per record or per query",
    )
    memory_axes.set(
        xscale="log",
        xlabel="records in the table",
        ylabel="bytes per record (tracemalloc)",
        title="Memory held per loaded record",
    )
    memory_axes.set_ylim(bottom=0)
    for axes in (cpu_axes, memory_axes):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle("W8: five fields, one index (discobase benchmark)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
