"""Frame <-> latent grid autoencoder whose decoder also predicts metric depth.

Convolutions run only at 1/unshuffle and 1/(2*unshuffle) resolution: PixelUnshuffle
folds 4x4 pixel blocks into channels first, because full-resolution convs with
few channels are slow on a CPU. The decoder's depth is the model's own geometry:
generated frames can be written into memory without an external estimator.
Imports only torch.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engine.model.config import AutoencoderConfig

MIN_DEPTH = 0.05
GEOMETRY = 26      # the layout pixels' channels (engine/model/layout_cells.PIXEL_CHANNELS)
# With appearance codes, after the geometry: the surface coordinates in metres (2) and each pixel's
# pattern lock (engine/model/pattern_spectrum.LOCK, 8), both for the texture field only; then the codes.
SURFACE = 10


class ResBlock(nn.Module):
    """conv-SiLU-conv with a residual; no normalisation (cheap on CPU, fine at this size)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        u = cfg.unshuffle
        self.net = nn.Sequential(
            nn.PixelUnshuffle(u),
            nn.Conv2d(3 * u * u, cfg.width, 3, padding=1),
            *[ResBlock(cfg.width) for _ in range(cfg.blocks)],
            nn.Conv2d(cfg.width, cfg.width_low, 4, stride=2, padding=1),
            *[ResBlock(cfg.width_low) for _ in range(cfg.blocks)],
            nn.SiLU(),
            nn.Conv2d(cfg.width_low, cfg.latent_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [-1, 1] -> (B, C, h, w)
        return self.net(x)


class LayoutInput(nn.Module):
    """The full-resolution scene layout into the decoder (engine/model/layout_cells.layout_pixels).

    The generator places rooms on the latent grid, 8x8 pixels a cell; where a wall meets the floor
    or a table's edge runs inside a cell, only the layout knows to the pixel. Its 4x4 pixel blocks
    are folded into channels (as the decoder's own output is unfolded) and embedded once; the
    embedding is added to the decoder's features before its full-feature blocks and to the output
    head, and gives the correction to the layout's depth. All three are zero at first, so a decoder
    given this input decodes exactly as before until training moves it. With 25 channels it also
    reads the surface coordinates' sines and cosines, and so can draw a pattern fixed to the world
    (ceiling tiles, corridor stripes) where the latent is only a colour field.
    """

    def __init__(self, cfg: AutoencoderConfig, embed: int = 64) -> None:
        super().__init__()
        u = cfg.unshuffle
        self.unshuffle = u
        # With appearance codes the layout carries the surface coordinates themselves too (metres,
        # and the pattern lock, for the texture field only): the embedding reads the geometry channels and the codes.
        self.channels = cfg.layout_channels - (SURFACE if cfg.appearance_dim else 0)
        self.embed = nn.Sequential(nn.PixelUnshuffle(u), nn.Conv2d(self.channels * u * u, embed, 1), nn.SiLU(),
                                   nn.Conv2d(embed, embed, 3, padding=1), nn.SiLU())
        self.to_features = nn.Conv2d(embed, cfg.width, 1)
        self.to_rgb = nn.Conv2d(embed, 3 * u * u, 1)
        self.to_depth = nn.Conv2d(embed, u * u, 1)
        for conv in (self.to_features, self.to_rgb, self.to_depth):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def features(self, layout: torch.Tensor, skip: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """The layout (B, C, H, W) -> its embedding (B, embed, H / u, W / u). It reads `channels` of the
        C: all but those in `skip` (a range: the surface channels only the texture field reads) and
        any after the last it knows (a nine-channel decoder of v2 stages 2-3 given the uv features).

        The fold and the 1x1 conv after it are one convolution with a u x u kernel and stride u (the
        fold puts channel c's block at c * u * u + row * u + column, the conv weight's own order), run
        as that: exported to ONNX, the fold is a six-dimensional transpose, which alone cost ONNX
        Runtime 3.3 ms a frame for a 34-channel layout on this CPU. `embed` keeps the two layers for
        the weights' names."""
        u, conv = self.unshuffle, self.embed[1]
        w = conv.weight.reshape(conv.out_channels, self.channels, u, u)
        a, b = skip
        # The channels it does not read get zero weights rather than being sliced out and the rest
        # concatenated: one conv over all of them costs ONNX Runtime less than the copies.
        unread = layout.shape[1] - self.channels - (b - a)
        if b > a or unread:
            w = torch.cat([w[:, :a], w.new_zeros(w.shape[0], b - a, u, u), w[:, a:],
                           w.new_zeros(w.shape[0], unread, u, u)], dim=1)
        return self.embed[2:](F.conv2d(layout, w, conv.bias, stride=u))


class Decoder(nn.Module):
    """Latent (and, where the config says so, the full-resolution scene layout) -> rgb and log-depth,
    one mapping for encoder and generated latents alike."""

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        u = cfg.unshuffle
        self.net = nn.Sequential(
            nn.Conv2d(cfg.latent_channels, cfg.width_low, 3, padding=1),
            *[ResBlock(cfg.width_low) for _ in range(cfg.blocks)],
            nn.SiLU(),
            nn.Conv2d(cfg.width_low, cfg.width * 4, 3, padding=1),
            nn.PixelShuffle(2),
            *[ResBlock(cfg.width) for _ in range(cfg.blocks + 1 + cfg.decoder_extra_blocks)],
            nn.SiLU(),
            nn.Conv2d(cfg.width, 4 * u * u, 3, padding=1),
            nn.PixelShuffle(u),
        )
        self.log_max = math.log(cfg.max_depth)
        self.unshuffle = u
        self.split = cfg.blocks + 4                                        # first full-feature block
        self.head = self.split + cfg.blocks + 1 + cfg.decoder_extra_blocks  # the SiLU before the output conv
        self.layout = LayoutInput(cfg) if cfg.layout_channels else None
        self.texture = None
        if cfg.appearance_dim:
            from engine.model.appearance import TextureField

            self.texture = TextureField(cfg.appearance_dim)
        # The texture field's output head for what the generator invented (config invented_field): `textured`.
        self.invented = None
        if cfg.invented_field:
            from engine.model.appearance import FieldHead

            self.invented = FieldHead()
        self.cfg = cfg
        self.refine = None
        if cfg.refine_width:
            from engine.model.refine import Refiner

            self.refine = Refiner(cfg.refine_width)

    def forward(self, z: torch.Tensor, layout: torch.Tensor | None = None, texture: bool = True,
                refine: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) and, for a layout decoder, the layout (B, 9 or 25, H, W) (all zero or None: layout off)
        -> rgb (B, 3, H, W) in about [-1, 1], log-depth (B, 1, H, W). texture=False leaves the texture
        field's pattern out, refine=False the refiner's residual (what each is trained on top of:
        engine/train/texture.py)."""
        if self.layout is None:
            out = self.net(z)
            return out[:, :3], out[:, 3:4].clamp(math.log(MIN_DEPTH), self.log_max)
        net, u = self.net, self.unshuffle
        layout = decoder_layout(self.cfg, z, layout)
        # With codes: geometry, surface coordinates and lock (the texture field's only), codes.
        e = self.layout.features(layout, (GEOMETRY, GEOMETRY + SURFACE) if self.texture is not None else (0, 0))
        x = net[:self.split](z) + self.layout.to_features(e)
        x = net[self.head + 1](net[self.head](net[self.split:self.head](x)))
        rgb = F.pixel_shuffle(x[:, :3 * u * u] + self.layout.to_rgb(e), u)
        drawn = layout[:, 4:9].sum(1, keepdim=True).clamp(0.0, 1.0)   # the class shares only
        if self.texture is not None and texture:
            rgb = textured(self.texture, rgb, layout, self.invented, self.cfg.appearance_dim)
        if self.refine is not None and refine:
            rgb = self.refine(rgb, layout[:, :GEOMETRY], drawn)
        own = F.pixel_shuffle(x[:, 3 * u * u:], u)
        # Depth from geometry where the layout drew a surface (`drawn`): its log depth plus a learned
        # correction; elsewhere (layout off, or nothing drawn) the depth head's own.
        grounded = layout[:, :1] + F.pixel_shuffle(self.layout.to_depth(e), u)
        logd = own + drawn * (grounded - own)
        return rgb, logd.clamp(math.log(MIN_DEPTH), self.log_max)


def textured(field: nn.Module, rgb: torch.Tensor, layout: torch.Tensor, invented: nn.Module | None = None,
             dim: int | None = None) -> torch.Tensor:
    """rgb (B, 3, H, W) in about [-1, 1] with the texture field's pattern drawn on it, as a gain and an offset
    on [0, 1] colour, from the coded decoder's full layout (geometry, surface coordinates and lock, `dim`
    codes; None: every channel after the lock): what Decoder.forward does last, and what each field alone is
    trained through (engine/train/texture.py).

    With an `invented` head (appearance.FieldHead, on the field's own features), the layout's channel after
    the codes says how much of each pixel's latent an observation gave (1) or the generator invented (0),
    and the field's and the head's outputs are mixed by it. One
    field cannot serve both: a latent the encoder made of a real frame holds a room's coarse patterns (a
    brick course 20-60 pixels apart), one the generator made of a place never seen holds its colours and
    light only, since which phase a pattern has cannot be predicted from geometry. The field adds what the
    first lacks, the head draws the whole pattern (trained on latents of the level drawn without its
    patterns, engine/world/plain.py)."""
    end = GEOMETRY + SURFACE + dim if dim is not None else layout.shape[1]
    geometry, surface, codes = layout[:, :GEOMETRY], layout[:, GEOMETRY:GEOMETRY + SURFACE], layout[:, GEOMETRY + SURFACE:end]
    if invented is None:
        gain, offset = field(geometry, surface, codes)
    else:
        gain, offset = field(geometry, surface, codes, invented, layout[:, end:end + 1])
    return rgb + (rgb + 1.0) * gain + 2.0 * offset


def decoder_layout_width(cfg: AutoencoderConfig) -> int:
    """Channels of the full-resolution layout the decoder's graph takes: the config's layout channels, and
    with the invented head the provenance channel after them (`textured`)."""
    return cfg.layout_channels + int(cfg.invented_field)


def decoder_layout(cfg: AutoencoderConfig, z: torch.Tensor, layout: torch.Tensor | None) -> torch.Tensor:
    """The full-resolution layout as the decoder (and its exported graph) takes it, for latents `z`: all
    zero for layout off (None), as training showed it; a coded layout without the provenance channel
    given it as all observed; any channels past the decoder's width left off (a decoder of v2 stages 2-3
    takes the first nine of what the layout source gives)."""
    width = decoder_layout_width(cfg)
    if layout is None:
        size = z.shape[-2] * 2 * cfg.unshuffle, z.shape[-1] * 2 * cfg.unshuffle
        return z.new_zeros(z.shape[0], width, *size)
    if cfg.invented_field and layout.shape[1] == cfg.layout_channels:
        layout = with_seen(layout, None)
    return layout[:, :width]


def with_seen(layout: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
    """A coded layout (B, C, H, W) with the provenance channel after it: `seen` (B, 1, H, W), or per latent
    cell (B, 1, h, w), the share of each pixel's latent an observation gave, or None for all of it (a frame's own encoding: the
    autoencoder's reconstruction, as its ceiling measures it)."""
    if seen is None:
        seen = layout.new_ones(layout.shape[0], 1, *layout.shape[-2:])
    elif seen.shape[-2:] != layout.shape[-2:]:   # per latent cell: blended across cell borders, no 8-pixel steps
        seen = F.interpolate(seen, size=layout.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([layout, seen.to(layout.dtype)], dim=1)


class Autoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        assert cfg.image_size % (2 * cfg.unshuffle) == 0, "image_size must divide by 2 * unshuffle"
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.appearance = None
        self.prior = None   # what a session draws unseen segments' looks from; None: the unit Gaussian
        if cfg.appearance_dim:
            from engine.model.appearance import AppearanceEncoder
            from engine.model.look_prior import LookPrior

            self.appearance = AppearanceEncoder(cfg.appearance_dim, GEOMETRY, cfg.unshuffle)
            if cfg.look_prior:
                self.prior = LookPrior(cfg.look_prior, cfg.appearance_dim)

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.encoder(rgb)

    def decode(self, z: torch.Tensor, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent (and the full-resolution layout, for a layout decoder) -> (rgb in [-1, 1] clamped,
        depth in metres)."""
        rgb, logd = self.decoder(z, layout)
        return rgb.clamp(-1.0, 1.0), logd.exp()


def grow_decoder(state: dict[str, torch.Tensor], cfg: AutoencoderConfig, extra: int,
                 fresh: "Autoencoder") -> dict[str, torch.Tensor]:
    """Autoencoder weights for `cfg` -> the same with `extra` more residual blocks at the end of the
    decoder's full-feature level. `fresh` is an Autoencoder built for the grown config: the new
    blocks take its initialisation, whose second conv is zero, so each starts as the identity and
    the grown decoder decodes exactly as the old one until training moves it. The output head's
    keys move up by `extra` places in the decoder's Sequential."""
    if extra < 1:
        raise ValueError(f"decoder growth must add at least one block, got {extra}")
    first_head = 2 * cfg.blocks + 5 + cfg.decoder_extra_blocks  # index of the SiLU after the last block
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[:2] == ["decoder", "net"] and int(parts[2]) >= first_head:
            parts[2] = str(int(parts[2]) + extra)
        out[".".join(parts)] = value
    for key, value in fresh.state_dict().items():
        parts = key.split(".")
        if parts[:2] == ["decoder", "net"] and first_head <= int(parts[2]) < first_head + extra:
            out[key] = value.clone()
    return out


def cell_depth(depth: torch.Tensor, cells: int) -> torch.Tensor:
    """Depth at the centre of each latent cell: (B, 1, H, W) -> (B, 1, cells, cells).

    The centre 2x2 pixels are averaged instead of the whole cell so that cells on
    an object edge take one surface's depth, not a floating mix of both.
    """
    b, _, h, w = depth.shape
    k = h // cells
    assert h == w and h % cells == 0, f"depth map {h}x{w} does not tile into {cells} cells"
    blocks = depth.reshape(b, 1, cells, k, cells, k)
    c0 = k // 2 - 1 if k >= 2 else 0
    c1 = c0 + min(2, k)
    return blocks[:, :, :, c0:c1, :, c0:c1].mean(dim=(3, 5))


def to_model_image(rgb_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]: the one place images are normalised."""
    return rgb_uint8.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8_image(x: torch.Tensor) -> torch.Tensor:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return x.clamp(-1, 1).add(1.0).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def widen_layout_input(state: dict[str, torch.Tensor], old: int, new: int) -> dict[str, torch.Tensor]:
    """An autoencoder state whose decoder's layout input takes `old` channels, made to take `new`:
    the first conv's weights for the added channels are zero, so it decodes exactly as before.
    PixelUnshuffle puts channel c's 4x4 block at columns c*16 .. c*16+15, so new channels append."""
    key = "decoder.layout.embed.1.weight"
    w = state[key]
    per = w.shape[1] // old
    return {**state, key: torch.cat([w, w.new_zeros(w.shape[0], (new - old) * per, *w.shape[2:])], 1)}


def upgrade_legacy_lock(cfg: AutoencoderConfig, state: dict[str, torch.Tensor]
                        ) -> tuple[AutoencoderConfig, dict[str, torch.Tensor]]:
    """A coded autoencoder saved when the pattern lock had fewer entries (six before its checker flag,
    seven before its brick flag) -> its config and state as today's: a layout channel more for each
    flag it lacks, read by the texture field alone at zero weight, and its look-prior table's locks
    with those flags off, so it decodes and draws exactly as it did. Anything else comes back as it is."""
    from dataclasses import replace

    missing = legacy_lock_missing(cfg)
    if not missing:
        return cfg, state
    from engine.model.appearance import widen_field_cond

    state = widen_field_cond(state, missing)
    key = "prior.lock"
    if key in state:
        table = state[key]
        state[key] = torch.cat([table, table.new_zeros(table.shape[0], missing)], dim=1)
    return replace(cfg, layout_channels=cfg.layout_channels + missing), state


def legacy_lock_missing(cfg: AutoencoderConfig) -> int:
    """How many of the pattern lock's flags a coded autoencoder's config is from before (0: today's)."""
    if not cfg.appearance_dim:
        return 0
    return max(0, GEOMETRY + SURFACE + cfg.appearance_dim - cfg.layout_channels)
