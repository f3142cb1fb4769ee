"""Weight averaging of models that share a network (`mirage train average`).

Two fine-tunes of one network that start from the same weights usually sit in one basin of the
loss, so the weight-by-weight mean of the two is itself a working network that lies between them
in behaviour (WiSE-FT's observation, Wortsman et al. 2022): here, between a generator continued
with an adversarial term (sharper, less faithful) and the one it was continued from. Averaging is
only meaningful for networks of one architecture, and for generators only on one latent space,
so both are checked before anything is written; the result is an ordinary model directory.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file

from engine.files import atomic_path, atomic_text
from engine.model.config import ModelConfig, check_temperature
from engine.train.checkpoint import save_tensors

PARTS = ("generator", "autoencoder")


class AverageError(ValueError):
    """Models that cannot be averaged; the message names the file and what differs."""


def _load_config(d: Path) -> ModelConfig:
    path = d / "config.json"
    if not path.is_file():
        raise AverageError(f"{path}: model config not found (is {d} a model directory?)")
    return ModelConfig.load(path)


def _load_weights(d: Path, part: str) -> dict[str, torch.Tensor]:
    path = d / f"{part}.safetensors"
    if not path.is_file():
        raise AverageError(f"{path}: weights file not found")
    return load_file(str(path))


def _same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def average_models(models: list[Path], out: Path, shares: list[float] | None = None,
                   part: str = "generator", temperature: float | None = None) -> Path:
    """Write to `out` a model whose `part` weights are the weighted mean of the models' own.

    Everything else (the other network, config.json's settings) is the first model's. For
    part="generator" the autoencoders must be identical: a generator predicts latents of the one
    autoencoder it was trained on. `shares` default to equal ones and are normalised to sum 1;
    `temperature` optionally replaces the config's default sampling temperature.
    """
    models = [Path(m) for m in models]
    if len(models) < 2:
        raise AverageError(f"averaging needs at least two models, got {len(models)}")
    if part not in PARTS:
        raise AverageError(f"part {part!r}: expected one of {', '.join(PARTS)}")
    weights = [1.0] * len(models) if shares is None else [float(w) for w in shares]
    if len(weights) != len(models):
        raise AverageError(f"{len(weights)} shares for {len(models)} models")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:   # NaN fails every >=
        raise AverageError(f"shares {weights}: must be non-negative with a positive sum")
    if temperature is not None:
        check_temperature(temperature)
    out = Path(out)
    if any(out.resolve() == m.resolve() for m in models):
        raise AverageError(f"{out}: the output directory is one of the inputs; choose a new one")
    shares = [w / sum(weights) for w in weights]

    cfgs = [_load_config(m) for m in models]
    other = "autoencoder" if part == "generator" else "generator"
    base_other = _load_weights(models[0], other)
    for m, cfg in zip(models[1:], cfgs[1:]):
        for key in (part, other):
            if asdict(getattr(cfg, key)) != asdict(getattr(cfgs[0], key)):
                raise AverageError(f"{m / 'config.json'}: its {key} network differs from {models[0] / 'config.json'}'s")
        if part == "generator" and not _same_tensors(_load_weights(m, "autoencoder"), base_other):
            raise AverageError(f"{m / 'autoencoder.safetensors'}: a different autoencoder from "
                               f"{models[0] / 'autoencoder.safetensors'}'s; generators of different latent "
                               "spaces cannot be averaged")

    states = [_load_weights(m, part) for m in models]
    mean: dict[str, torch.Tensor] = {}
    for k, first in states[0].items():
        for m, s in zip(models[1:], states[1:]):
            if k not in s or s[k].shape != first.shape:
                raise AverageError(f"{m / (part + '.safetensors')}: tensor {k} missing or of another shape")
        if first.is_floating_point():
            acc = sum(share * s[k].double() for share, s in zip(shares, states))
            mean[k] = acc.to(first.dtype)
        elif all(torch.equal(first, s[k]) for s in states[1:]):
            mean[k] = first              # integer buffers (counters) cannot be averaged; equal ones are kept
        else:
            raise AverageError(f"{part}.safetensors: integer tensor {k} differs between models")

    out.mkdir(parents=True, exist_ok=True)
    provenance = {"averaged_from": json.dumps([str(m) for m in models]), "shares": json.dumps(shares)}
    save_tensors(out / f"{part}.safetensors", mean, metadata=provenance)
    with atomic_path(out / f"{other}.safetensors") as tmp:
        shutil.copyfile(models[0] / f"{other}.safetensors", tmp)
    cfg = cfgs[0]
    if temperature is not None:
        cfg.inference.temperature = float(temperature)
    cfg.save(out / "config.json")
    from engine.model.world_model import write_checksums

    write_checksums(out)
    atomic_text(out / "averaged.json", json.dumps({"part": part, "models": [str(m) for m in models],
                                                         "shares": shares}, indent=2) + "\n")
    return out
