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


def _fidelities(bset: BenchmarkSet, masks: dict[str, Masks], reference: str) -> dict[str, np.ndarray]:
    from .harness import per_prompt

    return {name: per_prompt(bset, m, masks[reference])["fidelity"] for name, m in masks.items() if name != reference}


def fidelity_spread_figure(sets: list[BenchmarkSet], masks: dict[str, dict[str, Masks]], path: str | Path,
                           reference: str = "fp") -> Path:
    """Per-prompt FP-fidelity of every model, one box plot per set: the spread and the worst prompts, not only
    the mean."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.2), squeeze=False)
    for ax, bset in zip(axes[0], sets):
        scores = _fidelities(bset, masks[bset.name], reference)
        ax.boxplot(list(scores.values()), vert=False, showmeans=True, whis=(5, 95), flierprops={"markersize": 3})
        ax.set_yticks(range(1, len(scores) + 1), list(scores), fontsize=8)
        ax.set_xlabel(f"per-prompt FP-fidelity vs {reference} (whiskers 5-95 %)", fontsize=8)
        ax.set_title(f"{bset.name}: {len(next(iter(scores.values())))} prompts", fontsize=9)
        ax.invert_yaxis()
    fig.tight_layout()
    return save(fig, path, dpi=110)


def disagreement_figure(bset: BenchmarkSet, masks: dict[str, Masks], model: str, path: str | Path,
                        reference: str = "fp", worst: int = 6, margin: int = 12) -> Path:
    """The ``worst`` prompts of ``model`` (lowest FP-fidelity), cropped around their box: pixels both masks hold
    (grey), only the reference (blue), only ``model`` (red)."""
    plt = pyplot()
    scores = _fidelities(bset, {reference: masks[reference], model: masks[model]}, reference)[model]
    where = [(i, k) for i, item in enumerate(bset.images) for k in range(len(item.boxes))]
    picks = np.argsort(scores, kind="stable")[:worst]
    fig, axes = plt.subplots(1, len(picks), figsize=(2.2 * len(picks), 2.5), squeeze=False)
    for ax, p in zip(axes[0], picks):
        i, k = where[p]
        item = bset.images[i]
        x0, y0, x1, y1 = item.boxes[k].astype(int)
        h, w = item.image.shape[:2]
        ys, xs = slice(max(0, y0 - margin), min(h, y1 + margin)), slice(max(0, x0 - margin), min(w, x1 + margin))
        ref, got = masks[reference][i][k][ys, xs], masks[model][i][k][ys, xs]
        ax.imshow(item.image[ys, xs], cmap="gray")
        rgba = np.zeros((*ref.shape, 4), np.float32)
        rgba[ref & got] = (1, 1, 1, 0.25)
        rgba[ref & ~got] = (0.1, 0.3, 1, 0.7)
        rgba[got & ~ref] = (1, 0.1, 0.1, 0.7)
        ax.imshow(rgba)
        ax.set_title(f"{item.name} #{k}: {scores[p]:.2f}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{bset.name}: {model}'s worst prompts vs {reference} (blue: only {reference}, red: only {model})",
                 fontsize=8)
    fig.tight_layout()
    return save(fig, path, dpi=110)
