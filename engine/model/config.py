"""Model configuration saved beside the weights.

Inference rebuilds every network from this JSON alone (nanoGPT-style), so a
checkpoint never depends on the training command that made it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


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

    @property
    def latent_size(self) -> int:
        return self.image_size // (self.unshuffle * 2)


@dataclass
class GeneratorConfig:
    width: int = 128
    blocks: int = 4                # residual blocks at the latent grid
    mid_blocks: int = 2            # residual blocks at half the latent grid
    time_dim: int = 64
    context_noise: float = 0.1     # std of noise added to the previous latent while training
    # Share of training examples whose previous latent is blurred like the model's own outputs
    # (engine/train/world_data.py, WalkSampler._context); 0 in models trained before it existed.
    context_blur: float = 0.0
    # Share of training examples with memory whose canvas is read from a real LatentMemory holding
    # the walk so far (engine/train/history.py) instead of splatted from a few earlier frames; 0 in
    # models trained before it existed.
    history_canvas: float = 0.0


def check_temperature(temperature: float) -> None:
    """The sampler's starting-noise scale must be in (0, 3]; one rule for the session, the CLI and export.
    Lives here, not in the sampler, so torch-free callers (export's input checks) can use it."""
    if not (isinstance(temperature, (int, float)) and 0.0 < float(temperature) <= 3.0):
        raise ValueError(f"sampling temperature must be in (0, 3], got {temperature!r}")


@dataclass
class ModelConfig:
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    fov_deg: float = 70.0
    latent_scale: float = 1.0      # latents are divided by this before the generator sees them
    latent_shift: float = 0.0
    default_steps: int = 4
    # Scale of the sampler's starting noise (engine/model/sampler.py); 1.0 in models from before it.
    default_temperature: float = 1.0
    memory_capacity: int = 65536
    # Memory voxel edge in metres: points of one voxel merge (newest wins). 2 cm, chosen on training
    # worlds 500-503 with the stage-6 model (retrace 24.54 / 24.74 / 24.80 / 24.84 dB at 4 / 3 / 2 /
    # 1 cm): smaller voxels merge fewer neighbouring views, so a revisit reads more of its own cells.
    voxel_size: float = 0.02
    # A memory read skips generated points of the last N frames (engine/memory.py; 0: reads all).
    memory_skip_recent_generated: int = 0
    # A generated frame writes only cells its memory read showed nothing in (engine/memory.py,
    # keep_drawn_view); False: only cells not shown from an observation (keep_observed_view).
    memory_keep_drawn_view: bool = False
    # Per channel [lowest, highest] spatial mean of real frames' normalised latents, measured on
    # training worlds (engine/model/latent_range.py). A generated latent's channel means are kept
    # inside it; None (older models, tests that do not set it) turns the guard off.
    latent_mean_range: list[list[float]] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        def build(cls, data):
            known = {f.name for f in fields(cls)}
            unknown = set(data) - known
            if unknown:
                raise ValueError(f"model config: unknown keys for {cls.__name__}: {sorted(unknown)}")
            return cls(**data)

        d = dict(d)
        ae = build(AutoencoderConfig, d.pop("autoencoder", {}))
        gen = build(GeneratorConfig, d.pop("generator", {}))
        return build(ModelConfig, {**d, "autoencoder": ae, "generator": gen})

    def save(self, path: str | Path) -> None:
        """Write atomically: a config.json is never left half-written beside its weights."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)

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
        memory_capacity=4096,
    )
