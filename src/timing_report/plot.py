"""Draw two dispatches' times per node as a bar chart (needs the ``plot`` extra)."""

from __future__ import annotations

import os

from timing_report.report import DispatchRuns, NodeComparison


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def plot_comparison(
    a: DispatchRuns, b: DispatchRuns, rows: list[NodeComparison], path: str | os.PathLike
) -> None:
    """Save a grouped bar chart of CPU seconds (and wall seconds, if both have them) per node.

    Raises:
        PlotUnavailableError: If matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise PlotUnavailableError(
            "--plot needs matplotlib: pip install 'timing-executor[plot]'"
        ) from error
    measures = {"CPU seconds": [row.cpu() for row in rows]}
    if a.has_wall_time and b.has_wall_time:
        measures["Wall seconds"] = [row.wall() for row in rows]
    labels = [f"{row.node_id} {row.node_name or ''}".strip() for row in rows]
    positions = range(len(rows))
    width = 0.4
    figure = Figure(figsize=(max(6.0, 0.6 * len(rows) + 2), 3.5 * len(measures)))
    axes = figure.subplots(len(measures), 1, squeeze=False)[:, 0]
    for ax, (measure, pairs) in zip(axes, measures.items(), strict=True):
        for offset, side, dispatch in ((-width / 2, 0, a), (width / 2, 1, b)):
            values = [pair[side] or 0.0 for pair in pairs]
            label = f"{'AB'[side]} {dispatch.dispatch_id[:8]}"
            ax.bar([p + offset for p in positions], values, width, label=label)
        ax.set_ylabel(measure)
        rotated = len(rows) > 8
        ax.set_xticks(
            list(positions),
            labels,
            rotation=45 if rotated else 0,
            ha="right" if rotated else "center",
        )
        ax.legend()
    axes[0].set_title("Time per node")
    axes[-1].set_xlabel("Node")
    figure.tight_layout()
    figure.savefig(path)
