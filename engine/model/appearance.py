"""Per-room appearance codes: which look each room's floor, walls and furniture have.

The one-step generator outputs its conditional mean. Where a room was never seen, that mean is
a flat field: which pattern the walls carry, at what scale and in which colours cannot be
predicted from geometry, so every guess averages them away (measured: sharpness 0.5 of ground
truth's on explore walks, whatever loss the decoder was given). A conditional VAE separates the
unpredictable part out: a small code per *appearance segment* (one room's floor, or its walls,
or its furniture: what the worlds style together) says which look it has, and the decoder draws
that look, placed by the surface coordinates of the layout (engine/model/layout_cells.py).

- Training: the code is the posterior's: this encoder reads the ground-truth frame (it may: it
  is the posterior) and pools its features over each segment's pixels; a KL term keeps the codes
  near a unit Gaussian, so that a sample from it is a look the decoder knows.
- A session: a segment first seen in an observation takes the posterior's mean from that frame
  (the real look); one first seen in a generated frame draws a code from the prior. Either is
  kept for the walk with the memory, so a revisit shows the same look, and memory off decodes
  every segment with the prior's mean (zeros): nothing kept, nothing drawn.

Which segment a pixel belongs to is geometry (the room a surface bounds, and its class), drawn
by the layout's G-buffer; corridors, ceilings and picture surfaces have no code: their patterns
are the same in every level, or pictures, which memory keeps.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.model.pattern_spectrum import LOCK, SPECTRUM, pattern_lock, segment_spectra
from engine.model.segments import (
    MIN_PIXELS,
    code_map,
    footprint,
    segment_masks,
)

LOGVAR_RANGE = (-8.0, 4.0)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) in nats per segment, summed over the code's dimensions and
    averaged over the segments present (N, MAX_SEGMENTS) bool; zero when none is."""
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
    p = present.to(kl.dtype)
    return (kl * p).sum() / p.sum().clamp(min=1.0)


class AppearanceEncoder(nn.Module):
    """A frame and its layout -> a Gaussian posterior per appearance segment (mean, log variance).

    Convolutions at a quarter of the frame's side after folding 4x4 pixel blocks into channels (the
    pattern's fine detail survives the fold), then each segment's mean and standard deviation of
    those features over its pixels: a pattern's scale and contrast live in the second, its colours
    in the first. The surface coordinates in the layout let it tell a pattern's world scale from
    its size on screen."""

    def __init__(self, dim: int, layout_channels: int, unshuffle: int = 4, width: int = 64) -> None:
        super().__init__()
        self.dim, self.unshuffle, self.layout_channels = dim, unshuffle, layout_channels
        u2 = unshuffle * unshuffle
        self.features = nn.Sequential(
            nn.PixelUnshuffle(unshuffle), nn.Conv2d((3 + layout_channels) * u2, width, 1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
        )
        self.head = nn.Sequential(nn.Linear(2 * width + 2 * len(SPECTRUM), width), nn.SiLU(), nn.Linear(width, 2 * dim))

    def forward(self, rgb: torch.Tensor, layout: torch.Tensor, seg: torch.Tensor, uv: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """rgb (N, 3, H, W) in [-1, 1], the geometry layout (N, C, H, W), segment ids (N, 1, H, W),
        surface coordinates (N, 2, H, W) -> mean and log variance (N, MAX_SEGMENTS, D), and which
        segments the frame shows enough of to read (N, MAX_SEGMENTS) bool. Segments it does not
        show get the prior (0, 0). Beside the pooled features it reads each segment's spectrum in
        surface coordinates (segment_spectra), which states a pattern's frequency outright."""
        f = self.features(torch.cat([rgb, layout], dim=1))
        masks = segment_masks(seg, self.unshuffle)
        area = masks.sum((2, 3))                                          # in blocks
        norm = area.clamp(min=1e-6)[..., None]
        mean = torch.einsum("nchw,nshw->nsc", f, masks) / norm
        sq = torch.einsum("nchw,nshw->nsc", f * f, masks) / norm
        std = (sq - mean * mean).clamp(min=0.0).add(1e-6).sqrt()
        spectra = (segment_spectra(rgb, uv, seg) + 6.0) / 3.0   # log shares run about -9 to -1: to about +-1
        out = self.head(torch.cat([mean, std, spectra], dim=-1))
        present = area * self.unshuffle ** 2 >= MIN_PIXELS
        keep = present[..., None].to(out.dtype)
        mu = out[..., :self.dim] * keep
        logvar = out[..., self.dim:].clamp(*LOGVAR_RANGE) * keep
        return mu, logvar, present


def read_look(encoder: AppearanceEncoder, rgb: torch.Tensor, geometry: torch.Tensor, uv: torch.Tensor,
              seg: torch.Tensor, generator: torch.Generator | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What frames (N, 3, H, W) show of each segment's look: the posterior's mean code (N, MAX_SEGMENTS, D),
    which segments they show enough of to read (N, MAX_SEGMENTS) bool, and the pattern lock
    (N, MAX_SEGMENTS, LOCK). The one reading of an observation: a session keeps it with its memory, the
    autoencoder's ceiling (eval) decodes the frame with it."""
    mu, _, present = encoder(rgb, geometry, seg, uv)
    return mu, present, pattern_lock(rgb, uv, seg, generator=generator)


def look_layout(geometry: torch.Tensor, uv: torch.Tensor, seg: torch.Tensor, looks: torch.Tensor) -> torch.Tensor:
    """The decoder's full input: the layout pixels (N, 26, H, W), the surface coordinates (N, 2, H, W), and
    per pixel its segment's entry of `looks` (N, MAX_SEGMENTS, LOCK + D: the pattern lock, then the code;
    zero where a pixel has no segment)."""
    return torch.cat([geometry, uv, code_map(looks, seg)], dim=1)


def own_look_layout(encoder: AppearanceEncoder, rgb: torch.Tensor, pixels: torch.Tensor, uv: torch.Tensor,
                    seg: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The full decoder input that gives frames (N, 3, H, W) their own look: each segment they show at the
    posterior's mean and its lock, the others at the prior's mean, unlocked. What a session does for an
    observation, without memory: the autoencoder's ceiling (eval) decodes a frame so."""
    geometry = pixels[:, :encoder.layout_channels]
    mu, present, lock = read_look(encoder, rgb, geometry, uv, seg, generator)
    return look_layout(geometry, uv, seg, torch.cat([lock * present[..., None], mu], dim=-1))


# What the texture field reads beside a segment's code, per pixel: the five material classes, the corridor
# flag and the lock's checker and brick flags.
COND_EXTRA = 8


def widen_field_cond(state: dict[str, torch.Tensor], missing: int, prefix: str = "decoder.texture.") -> dict[str, torch.Tensor]:
    """A texture field saved when the lock lacked its last `missing` flags (pattern_spectrum.LOCK 6 before
    the checker flag, 7 before the brick flag, 2026-12-06/07) -> one that reads them at zero weight, so it
    draws exactly as it did. Other weights untouched."""
    out = dict(state)
    for name in ("freq", "cond", "film"):
        w = out[f"{prefix}{name}.weight"]
        out[f"{prefix}{name}.weight"] = torch.cat([w, w.new_zeros(w.shape[0], missing, *w.shape[2:])], dim=1)
    return out


# The texture field draws each axis at one frequency the code sets and at these multiples of it:
# a half for checkers and staggered courses, the fundamental, and two harmonics for sharp edges.
HARMONICS = (0.5, 1.0, 2.0, 3.0)
FREQ_RANGE = (SPECTRUM[0], SPECTRUM[-1])


class TextureField(nn.Module):
    """A pattern fixed to the world, drawn per pixel from the surface coordinates and the segment's code.

    The worlds' patterns (stripes, bricks, tiles, planks) are periodic in the surface coordinates at
    a frequency each room draws at random. A convolutional decoder given sines at a few fixed
    frequencies could only paint the commonest one (seen: corridor stripes on every wall). Here the
    code sets a frequency along each surface axis (`frequency`, which training also holds to the
    peak of the segment's measured spectrum, so it is read, not searched for through sines), and a
    small per-pixel network mixes periodic functions at it and its multiples (periodic_bases) into
    a gain and an offset on the decoder's colour. Each fades where a pixel spans more than about
    half its period (the pixel's footprint, the renderer's fwidth), as the renderer's patterns are
    antialiased: far walls get no moire. Its output is zero at first, so a decoder gains it
    without changing."""

    def __init__(self, dim: int, hidden: int = 32) -> None:
        super().__init__()
        k = len(HARMONICS)
        self.register_buffer("harmonics", torch.tensor(HARMONICS, dtype=torch.float32).view(1, k, 1, 1),
                             persistent=False)
        cond = dim + COND_EXTRA                              # the code, the five classes, corridor, checker and brick flags
        self.freq = nn.Conv2d(cond, 2, 1)                    # log cycles a metre along each axis
        self.inp = nn.Conv2d(BASES * k, hidden, 1)
        self.cond = nn.Conv2d(cond, hidden, 1)
        self.film = nn.Conv2d(cond, hidden, 1)
        self.mid = nn.Conv2d(hidden, hidden, 1)
        self.out = nn.Conv2d(hidden, 6, 1)
        for conv in (self.freq, self.film, self.out):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        nn.init.constant_(self.freq.bias, math.log(2.0))

    def frequency(self, cond: torch.Tensor) -> torch.Tensor:
        """(N, D + COND_EXTRA, ...) code, classes, corridor, checker and brick flags -> log frequency along each axis (N, 2, ...)."""
        return _log_frequency(self.freq(cond))

    def features(self, geometry: torch.Tensor, surface: torch.Tensor, codes: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The hidden features (N, hidden, H, W) the output heads read, and where a surface is drawn
        (N, 1, H, W); the inputs are forward's."""
        drawn = geometry[:, 4:9].sum(1, keepdim=True)
        uv, lock = surface[:, :2], surface[:, 2:2 + LOCK]
        c = torch.cat([codes, geometry[:, 4:9], geometry[:, 25:26], lock[:, 6:8]], dim=1)
        # The three 1x1 convs that read the code are one (their weights stacked): at full resolution
        # each call has a fixed cost beside its arithmetic.
        convs = (self.freq, self.cond, self.film)
        both = F.conv2d(c, torch.cat([m.weight for m in convs]), torch.cat([m.bias for m in convs]))
        hidden = self.cond.out_channels
        logf = _log_frequency(both[:, :2])   # what frequency() gives
        cond, film = both[:, 2:2 + hidden], both[:, 2 + hidden:]
        held = lock[:, 0:2]
        f = (logf + held * (lock[:, 2:4] - logf)).exp()
        cycles = f * uv + lock[:, 4:6]                                        # (N, 2, H, W)
        pu, pv = cycles[:, :1] * self.harmonics, cycles[:, 1:] * self.harmonics  # (N, K, H, W) each
        fade = torch.exp(-2.0 * (torch.maximum(f[:, :1], f[:, 1:]) * self.harmonics * footprint(uv)) ** 2)
        n, k, hh, ww = fade.shape   # every basis fades as its harmonic does: broadcast, not copied
        waves = (periodic_bases(pu, pv).view(n, BASES, k, hh, ww) * fade[:, None]).view(n, BASES * k, hh, ww)
        h = F.silu(self.inp(waves) + cond) * (1.0 + film)
        return h, drawn

    def forward(self, geometry: torch.Tensor, surface: torch.Tensor, codes: torch.Tensor,
                invented: nn.Module | None = None, seen: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """geometry: the layout pixels (N, 26, H, W); surface: the surface coordinates in metres and
        each pixel's segment lock (N, 2 + LOCK, H, W; engine/model/pattern_spectrum.pattern_lock);
        codes (N, D, H, W) -> gain and offset (N, 3, H, W) each, zero where nothing is drawn. Along
        an axis the lock holds, the pattern is drawn at the observed frequency and phase; elsewhere
        at the code's frequency and the lock's phase, drawn at random. With an `invented` head
        (FieldHead), its output where `seen` (N, 1, H, W) is 0, this field's own where it is 1, mixed
        between: both read the same features, so the second costs two 1x1 convolutions."""
        h, drawn = self.features(geometry, surface, codes)
        o = self.out(F.silu(self.mid(h)))
        if invented is not None:
            oi = invented(h)
            o = oi if seen is None else oi + seen * (o - oi)
        o = o * drawn
        return o[:, :3], o[:, 3:]


class FieldHead(nn.Module):
    """A second output head on a TextureField's features (its `mid` and `out` layers' shapes): what the
    decoder draws where the generator invented the latent (engine/model/autoencoder.textured)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.mid = nn.Conv2d(hidden, hidden, 1)
        self.out = nn.Conv2d(hidden, 6, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(F.silu(self.mid(h)))


BASES = 11   # periodic_bases' functions per frequency


def _log_frequency(raw: torch.Tensor) -> torch.Tensor:
    """The field's frequency conv output -> log cycles a metre, held to the range the spectra cover."""
    return raw.clamp(math.log(FREQ_RANGE[0]), math.log(FREQ_RANGE[1]))


def periodic_bases(pu: torch.Tensor, pv: torch.Tensor) -> torch.Tensor:
    """Phases (cycles) along the two surface axes, (N, K, H, W) each -> (N, 11 K, H, W): the generic
    periodic functions man-made surfaces are built from, so the field need not synthesise sharp edges
    out of sines: sine and cosine of each axis, soft square waves (stripes), thin lines at whole
    cycles (grout, seams), their products (checkers, grids) and lines staggered by half a cycle on
    alternate rows (courses of bricks or planks)."""
    tau = 2.0 * math.pi
    su, cu, sv, cv = torch.sin(tau * pu), torch.cos(tau * pu), torch.sin(tau * pv), torch.cos(tau * pv)
    qu, qv = torch.tanh(4.0 * su), torch.tanh(4.0 * sv)
    lu, lv = torch.exp(8.0 * (cu - 1.0)), torch.exp(8.0 * (cv - 1.0))
    row = torch.tanh(4.0 * torch.sin(math.pi * pv))          # +-1 on alternate rows (one row a cycle of v)
    stagger = torch.exp(8.0 * (torch.cos(tau * (0.5 * pu + 0.25 * (1.0 + row))) - 1.0))
    return torch.cat([su, cu, sv, cv, qu, qv, lu, lv, qu * qv, torch.maximum(lu, lv), stagger], dim=1)
