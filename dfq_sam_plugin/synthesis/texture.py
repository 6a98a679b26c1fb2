"""Texture targets for synthesis (issue 34; TexQ's idea of calibrating the texture-feature distribution, adapted to
a model without BatchNorm statistics). Without them every DFQ-SAM image has the same roughness, set by the one TV
target. With them, each image draws its own power-law spectrum slope, and is pushed toward the Laws texture energies
of a noise texture with that spectrum, so the set spans smooth (MR-like) to grainy (histology-like) textures.

Everything is per image and drawn from that image's generator: an image still depends on its index and seed alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_L5, _E5, _S5, _R5 = ((1.0, 4.0, 6.0, 4.0, 1.0), (-1.0, -2.0, 0.0, 2.0, 1.0), (-1.0, 0.0, 2.0, 0.0, -1.0),
                      (1.0, -4.0, 6.0, -4.0, 1.0))


def laws_filters() -> torch.Tensor:
    """Laws' 5×5 texture masks, the 15 outer products of level / edge / spot / ripple vectors that sum to zero
    (L5ᵀL5, the local mean, is left out), each scaled to unit L2 norm -> (15, 1, 5, 5)."""
    vecs = [torch.tensor(v) for v in (_L5, _E5, _S5, _R5)]
    masks = [torch.outer(a, b) for i, a in enumerate(vecs) for j, b in enumerate(vecs) if i or j]
    k = torch.stack(masks)
    return (k / k.flatten(1).norm(dim=1)[:, None, None]).unsqueeze(1)


def texture_energy(x: torch.Tensor, filters: torch.Tensor | None = None) -> torch.Tensor:
    """Log RMS response of every Laws mask over each image, channels averaged first: (B, C, H, W) -> (B, 15)."""
    k = (laws_filters() if filters is None else filters).to(x.device, x.dtype)
    grey = x.mean(dim=1, keepdim=True)
    response = F.conv2d(grey, k)
    return 0.5 * torch.log(response.pow(2).flatten(2).mean(-1) + 1e-12)


def power_law_texture(size: int, slope: float, rms_step: float, generator: torch.Generator) -> torch.Tensor:
    """A grey noise texture (1, size, size) whose power spectrum falls as 1/f^slope, scaled so the RMS difference
    of neighbouring pixels is ``rms_step`` (the TV prior's target: the roughness stays the TV term's, the texture
    term sets how it is spread over scales), around 0.5."""
    noise = torch.randn(size, size, generator=generator, dtype=torch.float64)
    fy = torch.fft.fftfreq(size, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(size, dtype=torch.float64)[None, :]
    f = torch.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f.pow(-slope / 2)
    amp[0, 0] = 0.0
    tex = torch.fft.ifft2(torch.fft.fft2(noise) * amp).real
    steps = torch.cat([(tex[:, 1:] - tex[:, :-1]).flatten(), (tex[1:, :] - tex[:-1, :]).flatten()])
    tex = tex / steps.pow(2).mean().sqrt() * rms_step
    return (tex - tex.mean() + 0.5).float().unsqueeze(0)


def texture_target(size: int, slope_range: tuple[float, float], rms_step: float,
                   generator: torch.Generator) -> torch.Tensor:
    """One image's draw: a spectrum slope from ``slope_range``, then the Laws energies (15,) of a noise texture
    with that slope."""
    lo, hi = slope_range
    slope = lo + (hi - lo) * float(torch.rand(1, generator=generator))
    return texture_energy(power_law_texture(size, slope, rms_step, generator)[None])[0]


def texture_loss(x: torch.Tensor, target: torch.Tensor, filters: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference of each image's Laws log-energies from its target: x (B, C, H, W), target (B, 15)
    -> (B,)."""
    return (texture_energy(x.float(), filters) - target.to(x.device)).pow(2).mean(-1)
