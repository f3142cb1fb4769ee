"""Reading a segment's pattern off a frame: its spectrum, and the frequency and phase that lock it.

The worlds' patterns (stripes, bricks, tiles, planks) are periodic in the surface coordinates at a
frequency each room draws at random, and their phase at the origin of those coordinates is fixed
by the level, not by where the camera stands. A decoder that draws a pattern at a frequency even a
few per cent off is out of phase a few metres away, and a pixel loss against ground truth then
teaches it to draw no pattern at all (the sharpness lost in runs rc1-rc6, docs/HISTORY.md). Read
off the frame instead, by demodulating the segment's brightness in world coordinates:

- `segment_spectra`: per surface axis, the share of the segment's brightness variance at each of
  a grid of frequencies; the posterior reads it, and its peak is where training holds the texture
  field's own frequency (what a code draws where nothing was observed).
- `pattern_lock`: the peak refined between grid points, and the phase of the pattern at that
  frequency; the texture field draws an observed segment's pattern with them, so its stripes,
  courses and grout lines fall where the frame shows them, in training and in a session alike.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from engine.model.segments import footprint, segment_masks

# Frequencies (cycles a metre) at which each segment's spectrum is measured: 12% apart, about the
# width of a peak from a few metres of wall; pattern_lock refines the peak between them.
SPECTRUM = tuple(0.4 * 1.12 ** k for k in range(32))
LOCK = 6   # per segment: whether each surface axis shows a clear pattern (2), its log frequency (2), its phase in cycles (2)
MIN_SHARE = 0.05   # a peak holding less of the variance than this is no pattern (a plain wall's grain)
# The lowest frequency a peak may be a pattern at. Light falls off across a wall over metres, and on
# a plain wall that slope holds most of the variance at the lowest frequencies of the grid (measured:
# the peak of most segments of the decoder's training pairs sat at 0.4 c/m, the grid's first); the
# worlds' patterns repeat more often than once a metre.
PATTERN_MIN_FREQ = 0.9
# The grid pattern_lock finds a peak on: 3% apart, so that a pattern seen over a dozen cycles (its
# peak about 8% wide) loses little between grid points, as it does on SPECTRUM's 12%.
LOCK_FREQS = tuple(PATTERN_MIN_FREQ * 1.03 ** k for k in range(92))


def _local_mean(g: torch.Tensor, valid: torch.Tensor, sigma: float) -> torch.Tensor:
    """Each pixel's Gaussian-weighted mean brightness over the pixels that have a segment (N, h, w): g
    and valid (N, 1, h, w), sigma in pixels. A blur that stops where segments end (a door, the
    ceiling), so a bright neighbour outside them does not leak in. Across two segments' seam it
    mixes them: one edge, no periodic pattern, so no peak (one blur instead of one per segment,
    a tenth of the cost)."""
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=g.dtype, device=g.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    both = torch.cat([g * valid, valid], dim=1).reshape(-1, 1, *g.shape[-2:])
    both = F.conv2d(F.pad(both, (r, r, 0, 0)), k.view(1, 1, 1, -1))
    both = F.conv2d(F.pad(both, (0, 0, r, r)), k.view(1, 1, -1, 1)).reshape(g.shape[0], 2, *g.shape[-2:])
    return both[:, 0] / both[:, 1].clamp(min=1e-3)


# The scale below which brightness varies by pattern and above which by light: a high-pass of this
# many pixels of a 128-pixel frame. Light falls off across a wall over metres and would otherwise
# hold most of a segment's variance at the lowest frequencies (measured: the spectra of most
# segments of the decoder's training pairs peaked at the grid's first, 0.4 c/m, bricks included);
# the worlds' patterns repeat every 3 to 20 pixels at the distances a room is seen from.
LIGHT_SCALE_PX = 6.0


def high_pass(img: torch.Tensor, valid: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """img (N, C, H, W) less its local mean over the `valid` pixels (N, 1, H, W) within LIGHT_SCALE_PX
    (of a 128-pixel frame; `sigma` pixels if given), zero elsewhere: the pattern without the light."""
    sigma = LIGHT_SCALE_PX * img.shape[-1] / 128.0 if sigma is None else sigma
    n, c = img.shape[:2]
    flat = img.reshape(n * c, 1, *img.shape[-2:])
    v = valid.repeat_interleave(c, dim=0)
    return ((flat[:, 0] - _local_mean(flat, v, sigma)) * v[:, 0]).reshape(img.shape)


def _segment_signal(rgb: torch.Tensor, uv: torch.Tensor, seg: torch.Tensor, factor: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Brightness about its local mean within its segment (a high-pass at LIGHT_SCALE_PX) at
    1/factor of the frame's side -> (that (N, 1, h, w), surface coordinates (N, 2, h, w), segment
    masks (N, S, h, w), pixels (N, S), variance (N, S))."""
    g = rgb.mean(1, keepdim=True)
    if factor > 1:
        g = F.avg_pool2d(g, factor)
        uv = uv[..., factor // 2::factor, factor // 2::factor]
        seg = seg[..., factor // 2::factor, factor // 2::factor]
    masks = segment_masks(seg)                                       # (N, S, h, w)
    area = masks.sum((2, 3)).clamp(min=1.0)                          # (N, S)
    sigma = LIGHT_SCALE_PX * g.shape[-1] / 128.0
    valid = (seg >= 0).to(g.dtype)
    d = (g[:, 0] - _local_mean(g, valid, sigma)) * valid[:, 0]
    var = torch.einsum("nhw,nshw->ns", d ** 2, masks) / area
    return d[:, None], uv, masks, area, var


def _shares(d: torch.Tensor, uv: torch.Tensor, masks: torch.Tensor, area: torch.Tensor, var: torch.Tensor,
            freqs: tuple[float, ...]) -> torch.Tensor:
    """_segment_signal's output -> (N, S, 2, J): per axis and frequency the share of each segment's
    variance there (a demodulation in world coordinates: the sum over the segment's pixels of its
    brightness times the cosine and the sine of the phase there). A pure cosine holds 0.5 at its own
    frequency. Frequencies a pixel cannot resolve (beyond half its footprint's) are left out, as the
    texture field leaves them out."""
    f = torch.tensor(freqs, dtype=d.dtype, device=d.device).view(1, -1, 1, 1)
    w = d * torch.exp(-2.0 * (f * footprint(uv)) ** 2)               # (N, J, h, w)
    out = []
    for axis in range(2):
        phase = (2.0 * math.pi) * f * uv[:, axis:axis + 1]
        c = torch.einsum("njhw,nshw->nsj", w * torch.cos(phase), masks)
        s = torch.einsum("njhw,nshw->nsj", w * torch.sin(phase), masks)
        out.append((c ** 2 + s ** 2) / area[..., None] ** 2)
    return torch.stack(out, dim=2) / (var[..., None, None] + 1e-4)


def segment_spectra(rgb: torch.Tensor, uv: torch.Tensor, seg: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """How each segment's brightness varies along its two surface axes, by frequency: rgb (N, 3, H, W),
    surface coordinates (N, 2, H, W) metres, segment ids (N, 1, H, W) -> (N, MAX_SEGMENTS, 2 *
    len(SPECTRUM)), per axis and frequency the log of the share of the segment's (high-passed)
    brightness variance there. Measured at 1/factor of the frame's side; what the posterior reads."""
    shares = _shares(*_segment_signal(rgb, uv, seg, factor), SPECTRUM)
    return torch.log(shares.flatten(2) + 1e-4)


def segment_power(rgb: torch.Tensor, uv: torch.Tensor, seg: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Like segment_spectra, but the log of the (high-passed) brightness power itself at each
    frequency, not its share: how strong a pattern is, wherever it falls. Differentiable in rgb."""
    d, uvs, masks, area, var = _segment_signal(rgb, uv, seg, factor)
    power = _shares(d, uvs, masks, area, var, SPECTRUM) * (var[..., None, None] + 1e-4)
    return torch.log(power.flatten(2) + 1e-6)


def spectral_peaks(spectra: torch.Tensor, freqs: tuple[float, ...] = SPECTRUM, min_share: float = MIN_SHARE
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log shares on a geometric grid of frequencies (N, S, 2J) -> (log frequency of the peak along
    each axis (N, S, 2), at or above PATTERN_MIN_FREQ, refined between grid points by a parabola
    through the peak and its neighbours, and whether that peak stands out (N, S, 2) bool: its share
    of the variance at least `min_share`, so a plain wall sets no target)."""
    j = len(freqs)
    logf = torch.log(torch.tensor(freqs, dtype=spectra.dtype, device=spectra.device))
    per_axis = spectra.view(*spectra.shape[:-1], 2, j)
    light = torch.tensor([f < PATTERN_MIN_FREQ for f in freqs], device=spectra.device)
    best, idx = per_axis.masked_fill(light, -1e9).max(-1)
    lo = per_axis.gather(-1, (idx - 1).clamp(0, j - 1)[..., None])[..., 0]
    hi = per_axis.gather(-1, (idx + 1).clamp(0, j - 1)[..., None])[..., 0]
    curve = lo - 2.0 * best + hi
    inner = (idx > int(light.sum())) & (idx < j - 1) & (curve < -1e-6)
    shift = torch.where(inner, 0.5 * (lo - hi) / torch.where(inner, curve, -torch.ones_like(curve)), 0.0)
    step = math.log(freqs[1] / freqs[0])
    return logf[idx] + shift.clamp(-0.5, 0.5) * step, best > math.log(min_share)


def pattern_lock(rgb: torch.Tensor, uv: torch.Tensor, seg: torch.Tensor, factor: int = 2,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Each segment's pattern as a frame shows it -> (N, MAX_SEGMENTS, LOCK): per surface axis whether
    it has a clear peak (1 or 0), the peak's log frequency on the fine grid LOCK_FREQS (spectral_peaks),
    and the phase in cycles at which a cosine at that frequency best fits the segment's brightness,
    cos(2 pi (f u + phase)). An axis without a clear peak gets frequency 0 (the texture field then
    uses its code's own) and a phase drawn at random (from `generator`), as a look drawn from the
    prior has: an unobserved pattern has no phase to match, so training must not find one at the
    coordinates' origin."""
    d, uvs, masks, area, var = _segment_signal(rgb, uv, seg, factor)
    shares = _shares(d, uvs, masks, area, var, LOCK_FREQS)
    logf, clear = spectral_peaks(torch.log(shares.flatten(2) + 1e-4), LOCK_FREQS)
    weighted = d * masks                                             # (N, S, h, w)
    phases = []
    for axis in range(2):
        cycles = logf[..., axis].exp()[..., None, None] * uvs[:, axis:axis + 1]   # (N, S, h, w)
        c = (weighted * torch.cos(2.0 * math.pi * cycles)).sum((2, 3))
        s = (weighted * torch.sin(2.0 * math.pi * cycles)).sum((2, 3))
        phases.append(torch.atan2(-s, c) / (2.0 * math.pi))
    phase = torch.stack(phases, dim=-1)                              # (N, S, 2)
    drawn = torch.rand(phase.shape, generator=generator).to(phase.device)
    on = clear.to(phase.dtype)
    return torch.cat([on, logf * on, torch.where(clear, phase, drawn)], dim=-1)


def unlocked(n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """The lock of `n` segments nothing was observed of (n, LOCK): no clear axis, phases at random."""
    out = torch.zeros(n, LOCK)
    out[:, 4:] = torch.rand(n, 2, generator=generator)
    return out.to(device)
