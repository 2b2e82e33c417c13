"""The report's charts as PNG bytes (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"human": "#4c72b0", "gpt": "#dd8452", "conversation": "#55a868", "yes": "#55a868", "no": "#c44e52"}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _grid(n: int, width: float = 10.0, row_height: float = 2.4):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, row_height * rows + 0.6), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def shares(series: list[tuple[str, dict[str, float]]]) -> bytes:
    """Horizontal bars of each source's share of the mix; several series (A vs B) side by side."""
    names = list(dict.fromkeys(name for _, s in series for name in s))
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(names) * len(series) + 1.2))
    height = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        ys = [k + i * height for k in range(len(names))]
        vals = [values.get(name, 0.0) * 100 for name in names]
        bars = ax.barh(ys, vals, height=height, label=label)
        ax.bar_label(bars, labels=[f"{v:.1f}%" for v in vals], padding=3, fontsize=8)
    ax.set_yticks([k + height * (len(series) - 1) / 2 for k in range(len(names))], names)
    ax.invert_yaxis()
    ax.set_xlabel("share of the mix (%)")
    ax.set_title("Mixture shares")
    if len(series) > 1:
        ax.legend()
    ax.margins(x=0.12)
    return _png(fig)


def lengths(hist: dict, unit: str) -> bytes:
    """Per source: histograms of human-turn, gpt-turn and conversation length (power-of-two bins)."""
    sources = hist["sources"]
    edges = hist["length_edges"]
    fig, axes = _grid(len(sources))
    for ax, (name, h) in zip(axes, sources.items()):
        for what in ("human", "gpt", "conversation"):
            counts = h[what]
            ax.stairs(counts, range(len(counts) + 1), label=what, color=COLORS[what], linewidth=1.5)
        ticks = list(range(0, len(edges), max(1, len(edges) // 6)))
        ax.set_xticks(ticks, [str(edges[t]) for t in ticks], fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(f"{unit} (log2 bins)", fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle("Text length per source")
    fig.tight_layout()
    return _png(fig)


def yes_no(stats: dict) -> bytes:
    """Per source with yes/no answers: the yes share as a stacked bar, 50% marked."""
    rows = [(name, b["answers"]) for name, b in [*stats["sources"].items(), ("total", stats["total"])]
            if b["answers"] and b["answers"]["yes"] + b["answers"]["no"]]
    fig, ax = plt.subplots(figsize=(10, 0.5 * max(len(rows), 1) + 1.2))
    for i, (name, a) in enumerate(rows):
        yes = a["yes"] / (a["yes"] + a["no"]) * 100
        ax.barh(i, yes, color=COLORS["yes"], label="yes" if i == 0 else None)
        ax.barh(i, 100 - yes, left=yes, color=COLORS["no"], label="no" if i == 0 else None)
        ax.text(1, i, f"yes {yes:.1f}%  ({a['yes']:,} / {a['yes'] + a['no']:,})", va="center", color="white",
                fontsize=9)
    ax.axvline(50, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of yes / no answers (%)")
    ax.set_title("Yes/no balance of short answers" + ("" if rows else " (no yes/no answers)"))
    if rows:
        ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def turns(hist: dict) -> bytes:
    """Per source: how many samples have 1, 2, ... human turns (the last bar is the open bin)."""
    sources = hist["sources"]
    fig, axes = _grid(len(sources))
    values = hist["turns_values"]
    for ax, (name, h) in zip(axes, sources.items()):
        last = max((i for i, c in enumerate(h["turns"]) if c), default=0)
        ax.bar(values[: last + 1], h["turns"][: last + 1], color=COLORS["human"])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("turns per sample", fontsize=8)
    fig.suptitle("Turns per sample")
    fig.tight_layout()
    return _png(fig)
