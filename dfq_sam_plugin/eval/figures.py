"""Figures a person looks at: overlays of GT and predicted masks, per benchmark set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._plot import pyplot, save
from .datasets import BenchmarkSet
from .harness import Masks


def _outline(ax, masks: np.ndarray, color: str) -> None:
    for m in masks:
        if m.any():
            ax.contour(m.astype(float), levels=[0.5], colors=[color], linewidths=0.8)


def overlay_figure(bset: BenchmarkSet, masks: dict[str, Masks], path: str | Path, max_images: int = 3) -> Path:
    """One row per image: the image with its boxes, GT outlines, then each model's predicted outlines."""
    plt = pyplot()
    items = bset.images[:max_images]
    cols = 2 + len(masks)
    fig, axes = plt.subplots(len(items), cols, figsize=(2.6 * cols, 2.6 * len(items)), squeeze=False)
    colors = ["tab:red", "tab:orange", "tab:purple", "tab:cyan", "tab:pink"]
    for r, item in enumerate(items):
        idx = bset.images.index(item)
        panels = [("image + boxes", None, None), ("ground truth", item.masks, "lime")]
        panels += [(name, m[idx], colors[j % len(colors)]) for j, (name, m) in enumerate(masks.items())]
        for c, (title, mk, color) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(item.image, cmap="gray")
            if mk is None:
                for x0, y0, x1, y1 in item.boxes:
                    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow", lw=0.6))
            else:
                _outline(ax, mk, color)
            ax.set_title(title if r == 0 else "", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(item.name, fontsize=7)
    fig.suptitle(f"{bset.name}: {bset.source}", fontsize=8)
    return save(fig, path, dpi=110)
