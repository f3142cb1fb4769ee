"""The world model as shipped: autoencoder + generator + the config they were built from.

Weights live as safetensors beside `config.json` (never pickle); `load()` rebuilds
the networks from the config alone. `checksums.json` beside them holds each weights file's
SHA-256, written by `save()` and checked by `load()`, so flipped bytes in a weights file are
refused instead of making noise frames (model directories from before it load unchecked). Latents seen by the generator and stored in
memory are normalised: (z - latent_shift) / latent_scale.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from engine.device import resolve_device
from engine.files import atomic_path, atomic_text
from engine.model.autoencoder import (
    Autoencoder,
    cell_depth,
    legacy_lock_missing,
    upgrade_legacy_lock,
)
from engine.model.config import ModelConfig
from engine.model.generator import Generator

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "models" / "default"
WEIGHT_FILES = ("autoencoder", "generator")
CHECKSUMS = "checksums.json"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(model_dir: str | Path) -> None:
    """Record the SHA-256 of every weights file of a model directory (after its weights changed)."""
    d = Path(model_dir)
    sums = {f"{n}.safetensors": sha256_of(d / f"{n}.safetensors") for n in WEIGHT_FILES}
    atomic_text(d / CHECKSUMS, json.dumps({"sha256": sums}, indent=1) + "\n")


def _expected_checksums(d: Path) -> dict[str, str]:
    path = d / CHECKSUMS
    if not path.is_file():
        return {}
    try:
        sums = json.loads(path.read_text())["sha256"]
        if not (isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values())):
            raise ValueError("not a map of file names to hex digests")
        return sums
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{path}: unreadable checksums ({e})") from None


class ModelFileError(ValueError):
    """A model directory that cannot be loaded; the message names the file and the problem."""


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ae = Autoencoder(cfg.autoencoder)
        self.gen = Generator(cfg.generator, cfg.autoencoder.latent_channels)

    @property
    def latent_channels(self) -> int:
        return self.cfg.autoencoder.latent_channels

    @property
    def cells(self) -> int:
        return self.cfg.autoencoder.latent_size

    @property
    def takes_layout(self) -> bool:
        """Whether the generator takes the scene layout (engine/model/layout_cells.py)."""
        return self.cfg.generator.layout_channels > 0

    @property
    def decoder_takes_layout(self) -> bool:
        """Whether the decoder takes the full-resolution scene layout (layout_cells.layout_pixels)."""
        return self.cfg.autoencoder.layout_channels > 0

    @property
    def image_size(self) -> int:
        return self.cfg.autoencoder.image_size

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, H, W) in [-1, 1] -> normalised latent (B, C, S, S)."""
        return (self.ae.encode(rgb) - self.cfg.latent_shift) / self.cfg.latent_scale

    def ae_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent (the generator's and memory's) -> the autoencoder's own, as its decoder takes it."""
        return z * self.cfg.latent_scale + self.cfg.latent_shift

    def decode(self, z: torch.Tensor, layout: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised latent -> rgb (B, 3, H, W) in [-1, 1], depth (B, 1, H, W), cell depth (B, 1, S, S).
        A layout decoder takes the full-resolution layout (B, 9, H, W); None there is layout off."""
        rgb, depth = self.ae.decode(self.ae_latent(z), layout if self.decoder_takes_layout else None)
        return rgb, depth, cell_depth(depth, self.cells)

    def save(self, out_dir: str | Path, metadata: dict | None = None) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {k: str(v) for k, v in (metadata or {}).items()}
        for name, mod in (("autoencoder", self.ae), ("generator", self.gen)):
            with atomic_path(out / f"{name}.safetensors") as tmp:
                save_file({k: v.detach().contiguous().cpu() for k, v in mod.state_dict().items()}, str(tmp),
                          metadata=meta)
        self.cfg.save(out / "config.json")
        write_checksums(out)

    @staticmethod
    def load(model_dir: str | Path | None = None, device: str | torch.device = "cpu") -> "WorldModel":
        device = resolve_device(device)   # before any work: a device this machine lacks is named
        d = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
        cfg_path = d / "config.json"
        if not cfg_path.is_file():
            raise ModelFileError(f"{cfg_path}: model config not found (is {d} a model directory?)")
        try:
            cfg = ModelConfig.load(cfg_path)
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"{cfg_path}: {e}") from None
        legacy_cfg = cfg.autoencoder   # a coded model saved with an older pattern lock is widened as it loads
        lacking = legacy_lock_missing(legacy_cfg)
        if lacking:
            cfg.autoencoder = replace(legacy_cfg, layout_channels=legacy_cfg.layout_channels + lacking)
        model = WorldModel(cfg)
        sums = _expected_checksums(d)
        for name, mod in (("autoencoder", model.ae), ("generator", model.gen)):
            path = d / f"{name}.safetensors"
            if not path.is_file():
                raise ModelFileError(f"{path}: weights file not found")
            want = sums.get(path.name)
            if want is not None and sha256_of(path) != want:
                raise ModelFileError(f"{path}: the file is damaged (its SHA-256 differs from {d / CHECKSUMS}); "
                                     f"restore it from the release or retrain")
            try:
                state = load_file(str(path))
            except Exception as e:  # noqa: BLE001 - safetensors raises several types
                raise ModelFileError(f"{path}: not a readable safetensors file ({e})") from None
            if name == "autoencoder" and legacy_cfg is not cfg.autoencoder:
                try:
                    _, state = upgrade_legacy_lock(legacy_cfg, state)
                except KeyError as e:
                    raise ModelFileError(f"{path}: weights do not match config.json (missing {e})") from None
            try:
                missing, unexpected = mod.load_state_dict(state, strict=False)
            except RuntimeError as e:   # a tensor of another shape than config.json builds
                first = next((ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln), str(e)[:200])
                raise ModelFileError(f"{path}: weights do not match config.json ({first})") from None
            if missing or unexpected:
                raise ModelFileError(f"{path}: weights do not match config.json "
                                     f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
            bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
            if bad is not None:
                raise ModelFileError(f"{path}: tensor {bad!r} holds NaN or infinite values")
        return model.to(device).eval()
