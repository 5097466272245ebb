"""Figures written into a run's workdir: training curves and image grids (PNG)."""

from __future__ import annotations

import math
import pathlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_curves(
    records: Sequence[dict], path: str | pathlib.Path, panels: dict[str, Sequence[str]]
) -> None:
    """One panel per entry of ``panels`` (title -> metric keys): value against step."""
    panels = {
        title: [k for k in keys if any(r.get(k) is not None for r in records)]
        for title, keys in panels.items()
    }
    panels = {title: keys for title, keys in panels.items() if keys}
    if not panels:
        return
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4 * len(panels), 3), squeeze=False
    )
    for ax, (title, keys) in zip(axes[0], panels.items()):
        for key in keys:
            points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o" if len(points) < 20 else None, label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def image_grid(
    images: np.ndarray,
    path: str | pathlib.Path,
    *,
    title: str = "",
    num_columns: int | None = None,
) -> None:
    """Saves ``images: [N, H, W]`` with values in [0, 1] as one grid PNG."""
    images = np.asarray(images)
    n = images.shape[0]
    cols = num_columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    height, width = images.shape[1:3]
    canvas = np.ones((rows * (height + 1) + 1, cols * (width + 1) + 1))
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = 1 + r * (height + 1), 1 + c * (width + 1)
        canvas[top : top + height, left : left + width] = images[i]
    scale = 6 / max(canvas.shape)
    fig = plt.figure(figsize=(canvas.shape[1] * scale, canvas.shape[0] * scale + 0.4))
    plt.imshow(np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1)
    plt.axis("off")
    if title:
        plt.title(title)
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
    panels: dict[str, tuple[np.ndarray, np.ndarray]], path: str | pathlib.Path
) -> None:
    """Side-by-side scatter plots, title -> (codes [N, 2], labels [N]), coloured by label."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False
    )
    for ax, (title, (codes, labels)) in zip(axes[0], panels.items()):
        points = ax.scatter(
            codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7
        )
        ax.set_title(title)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
    fig.colorbar(points, ax=axes[0].tolist(), ticks=range(10), label="digit")
    fig.savefig(path, dpi=100)
    plt.close(fig)
