"""Decoder probe: PSNR and sharpness (image-gradient energy over ground truth's) of decode(z) on
rendered frames of eval worlds, for clean encoder latents and for softened ones (the 3x3 blend
towards a box blur that generated latents resemble). Ten seconds against the eval set's twelve
minutes, for choosing among checkpoints; the eval set stays the measure that is reported.

    python docs/scripts/decoder_probe.py MODEL_DIR [MODEL_DIR|RUN_DIR ...] [--frames 96] [--pairs FILE ...]
        [--device cuda] [--json OUT.json]

A RUN_DIR of `mirage train decoder` works mid-run: its checkpoint is autoencoder.safetensors too.
A decoder told the latent's source (AutoencoderConfig.decoder_source) decodes clean latents as an
encoder's (the ceiling's case) and softened and generated ones as generated (the session's); it
also gets a column of clean latents decoded as generated.
With --pairs (a `mirage train decoder-pairs` file of worlds the decoder did not train on) it also
decodes the generated latents there and reports, per trajectory kind, PSNR against ground truth
and sharpness: what the eval set will see of a decoder change, in seconds. --json writes every
number per model (docs/scripts/gpu_decoder.sh chooses which snapshots to bring back from it).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from engine.metrics import gradient_energy, psnr
from engine.model.autoencoder import Autoencoder, to_model_image, to_uint8_image
from engine.model.config import ModelConfig
from engine.train.ae import random_free_poses
from engine.train.decoder import soften
from engine.world.geometry import EVAL_SEED_RANGE
from engine.world.levels import generate_level
from engine.world.renderer import Renderer


def frames(n: int, size: int, fov: float, per_world: int = 16) -> np.ndarray:
    """n ground-truth frames (uint8), per_world random free poses in each of the first eval worlds."""
    rng = np.random.default_rng(7)
    out = []
    r = None
    first = EVAL_SEED_RANGE[0]
    for s in range(first, first + -(-n // per_world)):
        level = generate_level(s)
        if r is None:
            r = Renderer(level, size, size, fov)
        r.set_level(level)
        rgb, _ = r.render(random_free_poses(level, per_world, rng))
        out.append(rgb)
    return np.concatenate(out)[:n]


def load_ae(path: Path) -> tuple[Autoencoder, ModelConfig]:
    cfg = ModelConfig.load(path / "config.json")
    ae = Autoencoder(cfg.autoencoder)
    ae.load_state_dict(load_file(str(path / "autoencoder.safetensors")))  # a model, or a run's checkpoint
    return ae.eval(), cfg


@torch.no_grad()
def probe(ae: Autoencoder, gt: np.ndarray, soften_amount: float, generated: bool) -> tuple[float, float]:
    dev = next(ae.parameters()).device
    x = to_model_image(torch.from_numpy(gt)).to(dev)
    z = ae.encoder(x)
    if soften_amount:
        z = soften(z, soften_amount)
    y = to_uint8_image(ae.decoder(z, float(generated))[0].cpu()).numpy()
    p = np.mean([psnr(a, b) for a, b in zip(y, gt)])
    s = np.mean([gradient_energy(a) for a in y]) / np.mean([gradient_energy(b) for b in gt])
    return float(p), float(s)


@torch.no_grad()
def probe_pairs(ae: Autoencoder, pairs: dict, res: dict) -> str:
    from engine.trajectory import KINDS

    dev = next(ae.parameters()).device
    y = np.concatenate([to_uint8_image(ae.decoder(pairs["latent"][i:i + 64].to(dev), 1.0)[0].cpu()).numpy()
                        for i in range(0, len(pairs["latent"]), 64)])
    gt = pairs["rgb"].numpy()
    p = np.array([psnr(a, b) for a, b in zip(y, gt)])
    ge = np.array([gradient_energy(a) for a in y])
    ge_gt = np.array([gradient_energy(b) for b in gt])
    out = []
    for k, name in enumerate(KINDS):
        for mem in (True, False):
            sel = ((pairs["kind"] == k) & (pairs["memory"] == mem)).numpy()
            if sel.any():
                res[f"{name}_{'on' if mem else 'off'}"] = {"psnr": float(p[sel].mean()),
                                                           "sharpness": float(ge[sel].mean() / ge_gt[sel].mean())}
                out.append(f"{name[:4]} {'on' if mem else 'off'}: {p[sel].mean():5.2f} dB "
                           f"sharp {ge[sel].mean() / ge_gt[sel].mean():.3f}")
    res["generated"] = {"psnr": float(p.mean()), "sharpness": float(ge.mean() / ge_gt.mean())}
    return f"generated all {p.mean():5.2f} dB sharp {ge.mean() / ge_gt.mean():.3f} | " + " | ".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", nargs="+", default=None, help="decoder-pairs file(s) of held-out training worlds")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    ap.add_argument("--json", default=None, help="also write every number here, per model")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pairs = None
    gt = None
    results = {}
    for m in a.models:
        ae, cfg = load_ae(Path(m))
        ae.to(a.device)
        res = results[m] = {}
        if a.pairs and pairs is None:
            from engine.train.generated_pairs import load_pairs

            c = cfg.autoencoder
            pairs = load_pairs(a.pairs, (c.latent_channels, c.latent_size, c.latent_size), c.image_size)
        if gt is None:
            gt = frames(a.frames, cfg.autoencoder.image_size, cfg.fov_deg)
        row = [f"{m[-28:]:28s}"]
        for amt in (0.0, 0.3, 0.6):
            p, s = probe(ae, gt, amt, generated=amt > 0)
            res[f"soften_{amt:.1f}"] = {"psnr": p, "sharpness": s}
            row.append(f"soften {amt:.1f}: {p:5.2f} dB sharp {s:.3f}")
        if cfg.autoencoder.decoder_source:
            p, s = probe(ae, gt, 0.0, generated=True)
            row.append(f"clean as generated: {p:5.2f} dB sharp {s:.3f}")
        print(" | ".join(row), flush=True)
        if pairs is not None:
            print(f"{'':28s} | {probe_pairs(ae, pairs, res)}", flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
