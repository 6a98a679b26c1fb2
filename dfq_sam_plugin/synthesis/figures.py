"""samples.png (synthetic images with their pseudo-positive masks and boxes) and losses.png."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._plot import pyplot, save


def samples_figure(pixels: np.ndarray, boxes: np.ndarray, masks: np.ndarray, path: str | Path,
                   max_images: int = 8, title: str = "") -> Path:
    plt = pyplot()
    n = min(max_images, len(pixels))
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        img = pixels[i]
        ax.imshow(img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1), cmap="gray", vmin=0, vmax=1)
        for k, (x0, y0, x1, y1) in enumerate(boxes[i]):
            color = f"C{k % 10}"
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color, lw=0.8))
            if masks[i][k].any():
                ax.contour(masks[i][k].astype(float), levels=[0.5], colors=[color], linewidths=0.6)
        ax.set_title(f"#{i}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save(fig, path)


def losses_figure(history: dict[str, np.ndarray], path: str | Path, title: str = "") -> Path:
    """history[term]: (batches, iterations) curves; plotted as mean ± range over batches."""
    plt = pyplot()
    terms = [t for t in ("seg", "pse", "tv", "total") if t in history and np.size(history[t])]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 2.8), squeeze=False)
    for ax, term in zip(axes[0], terms):
        curves = np.atleast_2d(history[term])
        x = np.arange(curves.shape[1])
        ax.plot(x, np.nanmean(curves, 0), lw=1)
        if len(curves) > 1:
            ax.fill_between(x, np.nanmin(curves, 0), np.nanmax(curves, 0), alpha=0.25)
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save(fig, path)
