"""config.json of a model directory, one dataclass per concern, saved beside the weights.

The networks (AutoencoderConfig, GeneratorConfig and the latent space in ModelConfig):
inference rebuilds every network from this JSON alone (nanoGPT-style), so a checkpoint
never depends on the training command that made it. InferenceConfig: sampling defaults.
MemoryConfig: the memory's policy. Training settings are not here: each run keeps its
own in its run directory (engine/train/checkpoint.py, save_run_args). Torch-free, so the
CLI's parsers can use it.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from engine.files import atomic_text


@dataclass
class AutoencoderConfig:
    image_size: int = 128          # square frames, divisible by 8 * unshuffle
    unshuffle: int = 4             # PixelUnshuffle factor before the first conv
    width: int = 96                # channels at image_size / unshuffle
    width_low: int = 128           # channels at the latent grid
    blocks: int = 2                # residual blocks per level
    latent_channels: int = 16
    max_depth: float = 30.0        # metres; depth is predicted in log space up to this
    # Residual blocks the decoder has at image_size / unshuffle beyond the encoder's `blocks + 1`:
    # a decoder wider in depth than its encoder (as asymmetric autoencoders do), 0 in models before it.
    decoder_extra_blocks: int = 0
    # Channels of the full-resolution scene layout the decoder takes (engine/model/layout_cells.py,
    # layout_pixels): 25 (geometry and surface coordinates, v2 stage 4), 9 (geometry only, stages
    # 2-3), or 0 for a decoder that sees only the latent (v1, v2 stage 1).
    layout_channels: int = 0
    # Dimensions of the per-room appearance code (engine/model/appearance.py), 0 for none. A decoder
    # with codes takes, after its 26 layout channels, the surface coordinates in metres, each pixel's
    # pattern lock (8) and the codes (layout_channels = 36 + appearance_dim), and draws patterns with
    # its texture field; the autoencoder holds the posterior encoder that reads the codes off a frame.
    appearance_dim: int = 0
    # Looks in the appearance prior a session draws unseen segments from (engine/model/look_prior.py):
    # training segments' codes and pattern locks as the posterior read them; 0 draws codes from the
    # unit Gaussian instead, with no lock.
    look_prior: int = 0
    # Channels of the full-resolution refiner at the decoder's end (engine/model/refine.py), 0 for none
    # (models before it). It needs the 26-channel layout.
    refine_width: int = 0
    # A second output head on the texture field, for what the generator invented rather than what was
    # observed (engine/model/autoencoder.textured): the decoder then takes one more layout channel
    # after the codes, the share of each pixel's latent that an observation gave (with_seen).
    invented_field: bool = False

    @property
    def latent_size(self) -> int:
        return self.image_size // (self.unshuffle * 2)


@dataclass
class GeneratorConfig:
    width: int = 128
    blocks: int = 4                # residual blocks at the latent grid
    mid_blocks: int = 2            # residual blocks at half the latent grid
    time_dim: int = 64
    # Scene-layout channels the generator takes (engine/model/layout_cells.py): 9, or 0 for a
    # generator that never sees the level's geometry (v1).
    layout_channels: int = 0


def check_temperature(temperature: float) -> None:
    """The sampler's starting-noise scale must be in (0, 3]; one rule for the session, the CLI and export.
    Lives here, not in the sampler, so torch-free callers (export's input checks) can use it."""
    if not (isinstance(temperature, (int, float)) and 0.0 < float(temperature) <= 3.0):
        raise ValueError(f"sampling temperature must be in (0, 3], got {temperature!r}")


@dataclass
class InferenceConfig:
    """How a session samples unless told otherwise (chosen on the eval set with these weights)."""
    steps: int = 4                 # flow-matching sampling steps per frame
    temperature: float = 1.0       # scale of the sampler's starting noise (engine/model/sampler.py)
    # Scale of the Gaussian prior draw of a room's appearance code (engine/model/appearance.py), for a
    # model without a look prior (autoencoder.look_prior 0): below 1 keeps unseen rooms' looks nearer the common ones.
    appearance_temperature: float = 1.0

    def check(self) -> None:
        """Refuse values no session can sample with, naming the field."""
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"inference.steps must be a whole number >= 1, got {self.steps!r}")
        try:
            check_temperature(self.temperature)
        except ValueError as e:
            raise ValueError(f"inference.temperature: {e}") from None
        t = self.appearance_temperature
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 4):
            raise ValueError(f"inference.appearance_temperature must be a number from 0 to 4, got {t!r}")


@dataclass
class MemoryConfig:
    """The memory's policy (engine/memory): how big, how finely it merges, what a generated frame
    may write. Tuned on the eval set with the weights beside it; the defaults are the shipped
    memory's, so `LatentMemory()` is the memory the shipped model runs with."""
    capacity: int = 65536            # points held; when every slot is taken the oldest go
    # Voxel edge in metres: points of one voxel merge (newest wins). Smaller voxels merge fewer
    # neighbouring views, so a revisit reads more of its own cells (1 cm chosen on the eval set).
    voxel_size: float = 0.01
    # A read skips generated points of the last N frames (0: reads all): those frames are the
    # context already, and copied back from memory too they compound their loss of detail.
    skip_recent_generated: int = 20
    # A generated frame writes only cells its read showed nothing in, so a place keeps its first
    # drawing; False: only cells not shown from an observation (keep_observed_view).
    keep_drawn_view: bool = True

    def check(self) -> None:
        """Refuse values no memory can run with, naming the field."""
        if not (isinstance(self.capacity, int) and self.capacity >= 1):
            raise ValueError(f"memory capacity must be a whole number of at least 1, got {self.capacity!r}")
        if not (isinstance(self.voxel_size, (int, float)) and 0 < self.voxel_size < 10):
            raise ValueError(f"memory voxel_size must be in (0, 10) metres, got {self.voxel_size!r}")
        if not (isinstance(self.skip_recent_generated, int) and self.skip_recent_generated >= 0):
            raise ValueError(f"memory skip_recent_generated must be a whole number >= 0, "
                             f"got {self.skip_recent_generated!r}")


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"model config: {where} must be an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"model config: unknown keys in {where}: {sorted(unknown)}")
    return cls(**data)


@dataclass
class ModelConfig:
    """config.json of a model directory. Top level: the networks and their latent space, what the
    weights beside it were trained as (nothing here may change without retraining). Sections
    `inference` and `memory`: how the shipped session runs them (tunable without training)."""
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    fov_deg: float = 70.0
    latent_scale: float = 1.0      # latents are divided by this before the generator sees them
    latent_shift: float = 0.0
    # Per channel [lowest, highest] spatial mean of real frames' normalised latents, measured on
    # training worlds (engine/model/latent_range.py). A generated latent's channel means are kept
    # inside it; None (tests that do not set it) turns the guard off.
    latent_mean_range: list[list[float]] | None = None
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a JSON object, got {type(d).__name__}")
        d = dict(d)
        parts = {"autoencoder": AutoencoderConfig, "generator": GeneratorConfig, "inference": InferenceConfig,
                 "memory": MemoryConfig}
        built = {k: _build(cls, d.pop(k, {}), k) for k, cls in parts.items()}
        built["memory"].check()
        cfg = _build(ModelConfig, {**d, **built}, "the top level")
        cfg.check()
        return cfg

    def check(self) -> None:
        """Refuse values that would load and then make black or noise frames, naming the field.
        Written as `not (ok)` so NaN, which fails every comparison, is refused too."""
        def finite(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not (finite(self.fov_deg) and 1.0 <= self.fov_deg <= 170.0):
            raise ValueError(f"fov_deg must be a number of degrees in [1, 170], got {self.fov_deg!r}")
        if not (finite(self.latent_scale) and self.latent_scale > 1e-6):
            raise ValueError(f"latent_scale must be a positive number, got {self.latent_scale!r}")
        if not finite(self.latent_shift):
            raise ValueError(f"latent_shift must be a finite number, got {self.latent_shift!r}")
        r = self.latent_mean_range
        if r is not None:
            c = self.autoencoder.latent_channels
            ok = (isinstance(r, list) and len(r) == c and all(isinstance(b, list) and len(b) == 2 and finite(b[0])
                                                               and finite(b[1]) and b[0] <= b[1] for b in r))
            if not ok:
                raise ValueError(f"latent_mean_range must be {c} [lowest, highest] pairs of finite numbers, "
                                 f"got {str(r)[:80]}")
        a = self.autoencoder
        if not (isinstance(a.appearance_dim, int) and 0 <= a.appearance_dim <= 64):
            raise ValueError(f"autoencoder.appearance_dim must be a whole number from 0 to 64, got {a.appearance_dim!r}")
        # With codes: 36 + D; 35 + D and 34 + D are models saved before the pattern lock's brick and
        # checker flags (loaded widened).
        allowed = tuple(c + a.appearance_dim for c in (36, 35, 34)) if a.appearance_dim else (0, 9, 25, 26)
        if a.layout_channels not in allowed:
            raise ValueError(f"autoencoder.layout_channels must be {' or '.join(map(str, allowed))} with "
                             f"appearance_dim {a.appearance_dim}, got {a.layout_channels!r}")
        if not (isinstance(a.look_prior, int) and not isinstance(a.look_prior, bool) and 0 <= a.look_prior <= 100_000
                and (a.appearance_dim or not a.look_prior)):
            raise ValueError(f"autoencoder.look_prior must be a whole number from 0 to 100000, and 0 without "
                             f"appearance codes; got {a.look_prior!r} with appearance_dim {a.appearance_dim}")
        if not (isinstance(a.refine_width, int) and not isinstance(a.refine_width, bool) and 0 <= a.refine_width <= 64
                and (a.layout_channels >= 26 or not a.refine_width)):
            raise ValueError(f"autoencoder.refine_width must be a whole number from 0 to 64, and 0 without the "
                             f"26-channel layout; got {a.refine_width!r} with layout_channels {a.layout_channels}")
        if not isinstance(a.invented_field, bool) or (a.invented_field and not a.appearance_dim):
            raise ValueError(f"autoencoder.invented_field must be true or false, and false without appearance codes; "
                             f"got {a.invented_field!r} with appearance_dim {a.appearance_dim}")
        if self.generator.layout_channels not in (0, 9):
            raise ValueError(f"generator.layout_channels must be 0 or 9, got {self.generator.layout_channels!r}")
        self.inference.check()

    def save(self, path: str | Path) -> None:
        """Write atomically: a config.json is never left half-written beside its weights."""
        atomic_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @staticmethod
    def load(path: str | Path) -> "ModelConfig":
        try:
            return ModelConfig.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None


def tiny_config() -> ModelConfig:
    """A very small configuration for tests: trains for a few steps in seconds."""
    return ModelConfig(
        autoencoder=AutoencoderConfig(image_size=64, width=24, width_low=32, blocks=1, latent_channels=8),
        generator=GeneratorConfig(width=32, blocks=1, mid_blocks=1, time_dim=16),
        # The memory the tiny models' tests were written against (before the shipped policy).
        memory=MemoryConfig(capacity=4096, voxel_size=0.02, skip_recent_generated=0, keep_drawn_view=False),
    )
