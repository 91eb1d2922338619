"""Speed-up vs quality plots: every family of methods as one line (a sweep or a front), accel's solid."""

from __future__ import annotations

from pathlib import Path


def speedup_plot(series: dict[str, list[tuple[float, float]]], path, ylabel: str, title: str = "",
                 x_label: str = "speed-up (FLOP ratio vs full compute)", y_cap: float | None = None) -> Path:
    """``series``: family name -> [(speed-up, quality)]; families whose name starts with "accel" are drawn solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    tab20 = plt.get_cmap("tab20").colors
    colours = tab20[0::2] + tab20[1::2]  # ten strong colours, then their light twins: 20 series stay apart
    accel_markers = iter("o^Dvp" * 4)  # accel's own series: solid, each with its marker
    for i, (family, points) in enumerate(series.items()):
        points = sorted(points)
        ys = [min(y, y_cap) if y_cap is not None else y for _, y in points]
        style = next(accel_markers) + "-" if family.startswith("accel") else "s--"
        ax.plot([x for x, _ in points], ys, style, color=colours[i % 20], alpha=0.9, label=f"{family} ({len(points)})")
    ax.set_xlabel(x_label)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
