"""Small PNG plots for materialization metadata, returned as Markdown the Dagster UI renders.
No Dagster imports; matplotlib with the non-interactive Agg backend."""

from __future__ import annotations

import base64
import io

import pandas as pd

from ltv_pipeline.lib.lazy import lazy


def _agg_backend(pyplot) -> None:
    pyplot.switch_backend("Agg")


# Imported on first use (lib/lazy.py): loading the Dagster definitions must not pay for it.
plt = lazy("matplotlib.pyplot", _agg_backend)


def _markdown(fig, title: str) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def barh(values: pd.Series, title: str, xlabel: str) -> str:
    """Horizontal bars, largest on top (e.g. feature importance)."""
    values = values.sort_values()
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(values) + 1.2))
    ax.barh([str(i) for i in values.index], values.to_numpy())
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return _markdown(fig, title)


def lines(frame: pd.DataFrame, x: str, ys: list[str], title: str, ylabel: str,
          diagonal: bool = False) -> str:
    """One line per column of ys against x (e.g. calibration, gains, revenue over time)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for y in ys:
        ax.plot(frame[x], frame[y], marker="o", markersize=3, label=y)
    if diagonal:
        lo, hi = float(frame[[x, *ys]].min().min()), float(frame[[x, *ys]].max().max())
        ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="ideal")
    ax.set_title(title)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.legend()
    return _markdown(fig, title)
