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

from engine.model.segments import SEGMENT_CLASSES, footprint, segment_masks
from engine.world.layout import WALL_C

# Frequencies (cycles a metre) at which each segment's spectrum is measured: 12% apart, about the
# width of a peak from a few metres of wall; pattern_lock refines the peak between them.
SPECTRUM = tuple(0.4 * 1.12 ** k for k in range(32))
# Per segment: whether each surface axis shows a clear pattern (2), its log frequency (2), its phase in
# cycles (2), whether it is a checker (1: _checker_lock) and whether it is a wall of bricks (1: _brick_lock);
# the texture field draws either only then.
LOCK = 8
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


def _segment_signal(rgb: torch.Tensor, uv: torch.Tensor, seg: torch.Tensor, factor: int, scale_px: float = LIGHT_SCALE_PX
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
    sigma = scale_px * g.shape[-1] / 128.0
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


def spectral_peaks(spectra: torch.Tensor, freqs: tuple[float, ...] = SPECTRUM, min_share: float = MIN_SHARE,
                   min_freq: float = PATTERN_MIN_FREQ) -> tuple[torch.Tensor, torch.Tensor]:
    """Log shares on a geometric grid of frequencies (N, S, 2J) -> (log frequency of the peak along
    each axis (N, S, 2), at or above `min_freq`, refined between grid points by a parabola
    through the peak and its neighbours, and whether that peak stands out (N, S, 2) bool: its share
    of the variance at least `min_share`, so a plain wall sets no target)."""
    j = len(freqs)
    logf = torch.log(torch.tensor(freqs, dtype=spectra.dtype, device=spectra.device))
    per_axis = spectra.view(*spectra.shape[:-1], 2, j)
    light = torch.tensor([f < min_freq for f in freqs], device=spectra.device)
    best, idx = per_axis.masked_fill(light, -1e9).max(-1)
    lo = per_axis.gather(-1, (idx - 1).clamp(0, j - 1)[..., None])[..., 0]
    hi = per_axis.gather(-1, (idx + 1).clamp(0, j - 1)[..., None])[..., 0]
    curve = lo - 2.0 * best + hi
    inner = (idx > int(light.sum())) & (idx < j - 1) & (curve < -1e-6)
    shift = torch.where(inner, 0.5 * (lo - hi) / torch.where(inner, curve, -torch.ones_like(curve)), 0.0)
    step = math.log(freqs[1] / freqs[0])
    return logf[idx] + shift.clamp(-0.5, 0.5) * step, best > math.log(min_share)


def _demodulate(d: torch.Tensor, masks: torch.Tensor, coord: torch.Tensor, f: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each segment's brightness d (N, 1 or S, h, w) against a cosine and a sine at its frequency f (N, S)
    cycles a metre of the coordinate x (N, 1, h, w): the sums over its pixels (N, S) each."""
    cycles = f[..., None, None] * coord                              # (N, S, h, w)
    weighted = d * masks
    c = (weighted * torch.cos(2.0 * math.pi * cycles)).sum((2, 3))
    return c, (weighted * torch.sin(2.0 * math.pi * cycles)).sum((2, 3))


def _fit_phase(d: torch.Tensor, masks: torch.Tensor, coord: torch.Tensor, logf: torch.Tensor) -> torch.Tensor:
    """The phase in cycles (N, S) at which cos(2 pi (f x + phase)) best fits each segment's brightness d
    (N, 1, h, w), for the coordinate x (N, 1, h, w) and each segment's log frequency (N, S)."""
    c, s = _demodulate(d, masks, coord, logf.exp())
    return torch.atan2(-s, c) / (2.0 * math.pi)


# A checker's two diagonal peaks must name one frequency within this (log) to be one checker, each
# holding at least CHECKER_SHARE of the variance: its power is split between the two diagonals, and
# both must agree, so a lower bar than an axis's MIN_SHARE (measured on six views of a tiled floor:
# 0.04 to 0.10 each, against 0.01 to 0.07 on either axis).
CHECKER_MATCH = 0.08
CHECKER_SHARE = 0.03
# Tiles are larger than stripes or bricks: a checker's period spans 30 to 60 pixels of a 128-pixel
# frame at the distances a floor is seen from, and LIGHT_SCALE_PX's high-pass removes most of it
# (measured: diagonal shares 0.01-0.05 with it, 0.04-0.10 with this). Light still varies slower.
CHECKER_SCALE_PX = 18.0


def pattern_lock(rgb: torch.Tensor, uv: torch.Tensor, seg: torch.Tensor, factor: int = 2,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Each segment's pattern as a frame shows it -> (N, MAX_SEGMENTS, LOCK): per surface axis whether
    it has a clear peak (1 or 0), the peak's log frequency on the fine grid LOCK_FREQS (spectral_peaks),
    and the phase in cycles at which a cosine at that frequency best fits the segment's brightness,
    cos(2 pi (f u + phase)). An axis without a clear peak gets frequency 0 (the texture field then
    uses its code's own) and a phase drawn at random (from `generator`), as a look drawn from the
    prior has: an unobserved pattern has no phase to match, so training must not find one at the
    coordinates' origin.

    A checker of tiles has almost nothing along either axis: each row of it averages to grey, and
    only its thin grout lines are left there (measured: no axis of a tiled floor's segment clear in
    six views of six). Its power lies on the diagonals: sq(u) sq(v) is mostly
    cos(pi f (u + v)) + cos(pi f (u - v)). Where both diagonals peak clearly at one frequency f / 2
    (_checker_lock), the segment is locked as a checker instead: both axes at f, with the phases that
    put the tiles' edges at whole cycles and the bright tiles where the texture field's checker of
    half-harmonic square waves is positive, as the frame shows them, and its seventh entry says so: a
    checker and a grid of lines lock alike, and the field cannot tell them apart by their phases.

    A wall of bricks locks at most its courses (the rows' mortar, along v): its joints move by half a
    brick from course to course, so along u they cancel. Where the courses' alternate sign shows the
    staggered joints (_brick_lock), both axes are locked as bricks and the last entry says so."""
    d, uvs, masks, area, var = _segment_signal(rgb, uv, seg, factor)
    shares = _shares(d, uvs, masks, area, var, LOCK_FREQS)
    logf, clear = spectral_peaks(torch.log(shares.flatten(2) + 1e-4), LOCK_FREQS)
    phase = torch.stack([_fit_phase(d, masks, uvs[:, a:a + 1], logf[..., a]) for a in range(2)], dim=-1)
    checker, logf_c, phase_c = _checker_lock(*_segment_signal(rgb, uv, seg, factor, CHECKER_SCALE_PX), shares)
    brick, logf_b, phase_b = _brick_lock(d, uvs, masks, area, var, shares, logf, phase)
    brick = brick & ~checker
    for flag, f_, p_ in ((checker, logf_c, phase_c), (brick, logf_b, phase_b)):
        both = flag[..., None]
        clear, logf, phase = clear | both, torch.where(both, f_, logf), torch.where(both, p_, phase)
    drawn = torch.rand(phase.shape, generator=generator).to(phase.device)
    on = clear.to(phase.dtype)
    flags = torch.stack([checker, brick], dim=-1).to(phase.dtype)
    return torch.cat([on, logf * on, torch.where(clear, phase, drawn), flags], dim=-1)


# The checker reading's grid along the diagonals u + v and u - v: a checker whose tiles repeat f
# times a metre peaks there at f / 2.
DIAGONAL_FREQS = tuple(f / 2.0 for f in LOCK_FREQS)


def _checker_lock(d: torch.Tensor, uvs: torch.Tensor, masks: torch.Tensor, area: torch.Tensor, var: torch.Tensor,
                  axis_shares: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which segments show a checker (N, S) bool, and for those the lock's log frequency (N, S, 2) and
    phase (N, S, 2) along the surface axes. A checker: both diagonals peak clearly at one frequency
    f / 2, each holding more of the variance than either axis's peak (stripes along an axis also
    leave some power on the diagonals, but less than on their axis). With the diagonals' phases
    psi_1, psi_2 (cos(2 pi (f/2 (u +- v) + psi))), the axes' phases are psi_1 + psi_2 + 1/2 and
    psi_1 - psi_2 + 1/2: then sin(pi (f u + phase_u)) sin(pi (f v + phase_v)) is the checker's
    fundamental, positive on the brighter tiles, and its edges fall at whole cycles."""
    diag = torch.cat([uvs[:, :1] + uvs[:, 1:], uvs[:, :1] - uvs[:, 1:]], dim=1)
    shares = _shares(d, diag, masks, area, var, DIAGONAL_FREQS)
    logf_d, clear_d = spectral_peaks(torch.log(shares.flatten(2) + 1e-4), DIAGONAL_FREQS, CHECKER_SHARE,
                                     min_freq=PATTERN_MIN_FREQ / 2.0)
    stronger = shares.amax(-1).amin(-1) > axis_shares.amax((-1, -2))   # the axes' at the light's scale: a bar
    checker = clear_d.all(-1) & ((logf_d[..., 0] - logf_d[..., 1]).abs() < CHECKER_MATCH) & stronger
    half = logf_d.mean(-1)                                           # (N, S): log f / 2
    psi = [_fit_phase(d, masks, diag[:, a:a + 1], half) for a in range(2)]
    phase = torch.stack([psi[0] + psi[1] + 0.5, psi[0] - psi[1] + 0.5], dim=-1)
    logf = (half + math.log(2.0))[..., None].expand(*half.shape, 2)
    return checker, logf, phase


# A wall of bricks: the share of its brightness variance that the staggered joints hold, read with
# the rows' alternate sign at the v axis's peak (_brick_lock), and how much more of it v holds there
# than u. Measured on every view of the walls and floors of training worlds 200,000-200,039 (three
# views a room, scripts in docs/HISTORY.md): brick walls 0.034 median, 83% of views at least 0.01. A
# checker of tiles is as staggered (its colours swap from row to row) and holds as much, but its grout
# runs along both axes alike, where courses run along v alone: with v at least BRICK_ASPECT times u,
# 79% of brick-wall views read as bricks and 1-2% of plain, striped or tiled walls do.
BRICK_SHARE = 0.01
BRICK_ASPECT = 3.0


def _brick_lock(d: torch.Tensor, uvs: torch.Tensor, masks: torch.Tensor, area: torch.Tensor, var: torch.Tensor,
                axis_shares: torch.Tensor, logf: torch.Tensor, phase: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which wall segments show bricks (N, S) bool, and for those the lock's log frequency (N, S, 2) and
    phase (N, S, 2), from the brightness d, the axes' shares on LOCK_FREQS (N, S, 2, J) and their peaks
    and phases (N, S, 2) whether clear or not (courses a few pixels apart often hold less than MIN_SHARE).

    The worlds' bricks are as long as two courses are high, so with v's peak at the courses' frequency
    F, the joints repeat at F / 2 along u and swap by half a brick on alternate courses. The texture
    field's staggered basis draws them so with u at F too: joints at every second cycle of u, shifted
    by one cycle where its row sign, tanh(4 sin(pi p_v)), flips. Shifting v's phase by half a cycle puts
    those flips on the courses' mortar (the fitted cosine peaks mid-course, on the bright brick).
    Multiplied by that row sign, the joints become one wave along u at F / 2 (as a checker is one wave
    along its diagonals), whose phase psi places them: u's phase is 2 psi (the joints are dark, the
    basis's lines positive, and the row sign chose which rows are odd). Only walls are read: the
    worlds lay no bricks elsewhere, and a floor's planks would be taken for them now and then."""
    fv = logf[..., 1].exp()                                                   # (N, S)
    phase_v = phase[..., 1] + 0.5
    row = torch.tanh(4.0 * torch.sin(math.pi * (fv[..., None, None] * uvs[:, 1:2] + phase_v[..., None, None])))
    c, s = _demodulate(d * row, masks, uvs[:, :1], 0.5 * fv)
    share = (c ** 2 + s ** 2) / area ** 2 / (var + 1e-4)
    j = ((logf[..., 1] - math.log(LOCK_FREQS[0])) / math.log(LOCK_FREQS[1] / LOCK_FREQS[0])).round().long()
    at = axis_shares.gather(-1, j.clamp(0, len(LOCK_FREQS) - 1)[..., None, None].expand(*j.shape, 2, 1))[..., 0]
    wall = (torch.arange(share.shape[-1], device=share.device) % len(SEGMENT_CLASSES)) == SEGMENT_CLASSES.index(WALL_C)
    brick = wall & (share >= BRICK_SHARE) & (at[..., 1] > BRICK_ASPECT * at[..., 0])
    phase_u = 2.0 * torch.atan2(-s, c) / (2.0 * math.pi)
    return brick, logf[..., 1:2].expand_as(logf), torch.stack([phase_u, phase_v], dim=-1)


def unlocked(n: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """The lock of `n` segments nothing was observed of (n, LOCK): no clear axis, phases at random, no checker
    and no bricks."""
    out = torch.zeros(n, LOCK)
    out[:, 4:6] = torch.rand(n, 2, generator=generator)
    return out.to(device)
