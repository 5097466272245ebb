"""Figures written into a run's workdir: training curves and image grids (PNG)."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def plot_curves(
    records: Sequence[dict],
    path: str | pathlib.Path,
    panels: dict[str, Sequence[str]],
    *,
    ylabels: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    suptitle: str = "",
) -> None:
    """One panel per entry of ``panels`` (title -> metric keys): value against step.

    ``ylabels[title]``: the panel's y-axis label (its unit); ``labels[key]``: a
    metric's legend entry (default: the key). Panels without data are left out.
    """
    panels = {
        title: [k for k in keys if any(r.get(k) is not None for r in records)]
        for title, keys in panels.items()
    }
    panels = {title: keys for title, keys in panels.items() if keys}
    if not panels:
        return
    ylabels, labels = ylabels or {}, labels or {}
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(4.4 * len(panels), 3.4 + 0.3 * bool(suptitle)),
        squeeze=False,
    )
    for ax, (title, keys) in zip(axes[0], panels.items()):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            steps, values = zip(*points)
            marker = "o" if len(points) < 20 else None
            ax.plot(steps, values, marker=marker, label=labels.get(key, key))
        _label_panel(ax, title, "step", ylabels.get(title, ""))
    _save(fig, path, suptitle)


def _label_panel(ax, title: str, xlabel: str, ylabel: str) -> None:
    """Small title, axis labels, a light grid and a legend."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig, path, suptitle: str = "") -> None:
    """Writes ``fig`` (with its suptitle) to ``path`` as a 100-dpi PNG and closes it."""
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def grid_canvas(images: np.ndarray, num_columns: int) -> np.ndarray:
    """images: [N, H, W] tiled row by row, 1-pixel white borders:
    [R (H + 1) + 1, num_columns (W + 1) + 1] with R = ceil(N / num_columns)."""
    n, height, width = images.shape[:3]
    rows = math.ceil(n / num_columns)
    canvas = np.ones((rows * (height + 1) + 1, num_columns * (width + 1) + 1))
    for i in range(n):
        r, c = divmod(i, num_columns)
        top, left = 1 + r * (height + 1), 1 + c * (width + 1)
        canvas[top : top + height, left : left + width] = images[i]
    return canvas


def image_grid(
    images: np.ndarray,
    path: str | pathlib.Path,
    *,
    title: str = "",
    num_columns: int | None = None,
) -> None:
    """Saves ``images: [N, H, W]`` with values in [0, 1] as one grid PNG."""
    images = np.asarray(images)
    canvas = grid_canvas(images, num_columns or math.ceil(math.sqrt(len(images))))
    scale = 6 / max(canvas.shape)
    fig = plt.figure(figsize=(canvas.shape[1] * scale, canvas.shape[0] * scale + 0.4))
    plt.imshow(np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1)
    plt.axis("off")
    if title:
        plt.title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def series_grid(
    series: np.ndarray,
    path: str | pathlib.Path,
    *,
    title: str = "",
    num_columns: int = 4,
    overlay: np.ndarray | None = None,
    labels: tuple[str, str] = ("data", "reconstruction"),
) -> None:
    """Saves ``series: [N, T]`` as a grid of line plots, ``overlay: [N, T]`` (e.g.
    reconstructions) dashed on the same axes."""
    series = np.asarray(series)
    rows = math.ceil(len(series) / num_columns)
    fig, axes = plt.subplots(
        rows, num_columns, figsize=(3 * num_columns, 1.8 * rows + 0.5), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        if i >= len(series):
            ax.axis("off")
            continue
        ax.plot(series[i], lw=1.0, label=labels[0])
        if overlay is not None:
            ax.plot(np.asarray(overlay)[i], "--", lw=1.0, label=labels[1])
        ax.tick_params(labelsize=6)
    if overlay is not None:
        axes.flat[0].legend(fontsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def normalize_images(images: np.ndarray) -> np.ndarray:
    """Each image [N, H, W] min-max scaled to [0, 1] (filters, principal vectors)."""
    images = np.asarray(images, np.float64)
    low = images.min(axis=(1, 2), keepdims=True)
    high = images.max(axis=(1, 2), keepdims=True)
    return (images - low) / np.maximum(high - low, 1e-12)


def latent_scatter(
    panels: dict[str, tuple[np.ndarray, np.ndarray | None]],
    path: str | pathlib.Path,
    suptitle: str = "",
) -> None:
    """Side-by-side scatter plots, title -> (codes [N, 2], labels [N] or None), coloured
    by label (digit) when labels are given."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False
    )
    points = None
    for ax, (title, (codes, labels)) in zip(axes[0], panels.items()):
        if labels is None:
            ax.scatter(codes[:, 0], codes[:, 1], s=5, alpha=0.7, color="C0")
        else:
            points = ax.scatter(
                codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7
            )
        ax.set_title(title)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
    if points is not None:
        fig.colorbar(points, ax=axes[0].tolist(), ticks=range(10), label="digit")
    if suptitle:
        fig.suptitle(suptitle)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def class_scatter(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | pathlib.Path,
    suptitle: str = "",
) -> None:
    """Side-by-side scatter plots, title -> (codes [N, 2], labels [N] ints), one
    colour (C<label>) and legend entry per class: for a few classes, e.g. UCR series."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False
    )
    for ax, (title, (codes, labels)) in zip(axes[0], panels.items()):
        for label in np.unique(labels):
            keep = labels == label
            ax.scatter(
                codes[keep, 0],
                codes[keep, 1],
                s=6,
                alpha=0.7,
                color=f"C{int(label) % 10}",
                label=f"class {label}",
            )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
        ax.legend(fontsize=7, markerscale=2)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _tick_labels(values, max_ticks: int) -> tuple[list[int], list[str]]:
    """Every ceil(n / max_ticks)-th index of ``values`` and its label (floats: 2 s.f.)."""
    keep = list(range(0, len(values), math.ceil(len(values) / max_ticks)))
    text = [v if isinstance(v, str) else f"{v:.2g}" for v in values]
    return keep, [text[i] for i in keep]


def _label_cells(ax, cell_shape, column_values, row_values) -> None:
    """Ticks at the centres of a grid_canvas's columns and rows."""
    height, width = cell_shape
    cols, col_text = _tick_labels(column_values, max_ticks=7)
    rows, row_text = _tick_labels(row_values, max_ticks=12)
    ax.set_xticks([1 + c * (width + 1) + (width - 1) / 2 for c in cols], col_text)
    ax.set_yticks([1 + r * (height + 1) + (height - 1) / 2 for r in rows], row_text)


def image_panels(
    panels: dict[str, np.ndarray],
    path: str | pathlib.Path,
    *,
    num_columns: int,
    suptitle: str = "",
    xlabel: str = "",
    ylabel: str = "",
    ticks: dict[str, tuple[Sequence, Sequence]] | None = None,
    panels_per_row: int | None = None,
) -> None:
    """Image grids side by side, title -> images [N, H, W] in [0, 1], ``num_columns``
    per row, ``panels_per_row`` panels to a row of the figure (default all).
    ``ticks[title] = (column values, row values)`` labels a panel's columns and rows
    (e.g. z1 and z2 of a manifold, t of an interpolation); others have none."""
    canvases = {t: grid_canvas(np.asarray(im), num_columns) for t, im in panels.items()}
    ch, cw = next(iter(canvases.values())).shape
    side = max(5.0, 1.5 * max(ch, cw) / 100)  # inches: >= 1.5 screen px per pixel
    width, height = side * cw / max(ch, cw), side * ch / max(ch, cw)
    cols = min(panels_per_row or len(panels), len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cols * width + 1, rows * (height + 0.6) + 0.6),
        squeeze=False,
    )
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (title, canvas) in zip(axes.flat, canvases.items()):
        ax.imshow(np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        if ticks and title in ticks:
            _label_cells(ax, np.shape(panels[title])[1:3], *ticks[title])
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def labelled_scatter(
    points: Sequence[tuple[float, float, str]],
    path: str | pathlib.Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
) -> None:
    """One labelled point per (x, y, label), e.g. models by two scores."""
    fig, ax = plt.subplots(figsize=(8, 6))
    for x, y, label in points:
        ax.scatter([x], [y], s=18)
        ax.annotate(
            label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def line_panels(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    path: str | pathlib.Path,
    *,
    xlabels: Mapping[str, str] | None = None,
    ylabel: str = "",
    suptitle: str = "",
    log_x: bool = False,
) -> None:
    """One panel per title, one marked line per label: {title: {label: (xs, ys)}},
    e.g. a measured effect against the size of what causes it."""
    xlabels = xlabels or {}
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.4 * len(panels), 3.6), squeeze=False
    )
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, (xs, ys) in lines.items():
            ax.plot(xs, ys, marker="o", label=label)
        if log_x:
            ax.set_xscale("log")
        _label_panel(ax, title, xlabels.get(title, ""), ylabel)
    _save(fig, path, suptitle)


def extremes_and_histograms(
    rows: Sequence[dict], path: str | pathlib.Path, *, score_name: str = "score"
) -> None:
    """One row per class: its least and most anomalous images, then density histograms
    of the scores of normal vs anomalous test images. rows[i]: {"name": str, "least",
    "most": images [k, H, W] in [0, 1], "least_scores", "most_scores": [k], "normal":
    scores [n], "anomalous": scores [m], "auroc": float}."""
    columns = math.ceil(len(rows[0]["least"]) / 2)  # images in 2 rows per panel
    fig, axes = plt.subplots(
        len(rows),
        3,
        figsize=(14, 2.7 * len(rows) + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 1, 1.2]},
        layout="constrained",
    )
    fig.suptitle(f"One-class models: extreme test images and {score_name} histograms")
    for (ax_low, ax_high, ax_hist), row in zip(axes, rows):
        for ax, side in ((ax_low, "least"), (ax_high, "most")):
            canvas = grid_canvas(np.asarray(row[side]), columns)
            ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
            s = row[f"{side}_scores"]
            ax.set_title(
                f"{row['name']}: {side} anomalous of its test images\n"
                f"({score_name} {min(s):.4g} to {max(s):.4g})",
                fontsize=9,
            )
            ax.set_xticks([])
            ax.set_yticks([])
        pooled = np.concatenate([row["normal"], row["anomalous"]])
        bins = np.linspace(*np.percentile(pooled, [0.5, 99.5]), 40)
        for key, label in (("normal", row["name"]), ("anomalous", "other classes")):
            ax_hist.hist(
                row[key],
                bins=bins,
                density=True,
                alpha=0.55,
                label=f"{key}: {label} (n = {len(row[key])})",
            )
        ax_hist.set_title(f"{row['name']} model: AUROC {row['auroc']:.3f}", fontsize=9)
        ax_hist.set_xlabel(f"{score_name} (0.5-99.5% range)")
        ax_hist.set_ylabel("density")
        ax_hist.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
