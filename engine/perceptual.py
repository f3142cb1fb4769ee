"""Perceptual measures: ST-LPIPS (shift-tolerant LPIPS, AlexNet) and a Frechet distance on its features.

The network is defined here, in our own code; only its trained weights come from the
`stlpips-pytorch` wheel (BSD-2-Clause, Ghildyal and Liu 2022), read as a plain state dict
with `torch.load(weights_only=True)`: the wheel's own modules import torchvision (which does
not load beside the CPU torch build here) and its blur-pool code is CC BY-NC-SA, so neither
is imported.

The shift-tolerant AlexNet is AlexNet with stride-1 convolutions and max pools followed by
an anti-aliasing blur pool (a 3x3 binomial filter, stride 2, reflection padding of 2), so a
one-pixel shift of an image barely moves its features. LPIPS compares the unit-normalised
features of two images layer by layer, weighs the squared differences per channel (the
"lin" heads) and averages over positions.

    lpips(a, b)        per-pair distance, uint8 (N, H, W, 3) images
    alex_features(x)   512 values per image for fd_alex: the relu4 and relu5 maps (256 channels
                       each), unit-normalised across channels at every position and averaged
                       over positions
    frechet_distance(f1, f2)
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = "weights/vST0.0/alex_shift_tolerant.pth"
# LPIPS's input scaling (the inputs are [-1, 1]); also stored in the weights file.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
CHANNELS = (64, 192, 384, 256, 256)
# Layers whose pooled features make fd_alex's vector: relu4 + relu5, 256 channels each. (Issue 37
# says "640 values"; relu4 and relu5 have 512. With these, flat grey on an eval explore walk scores
# 1,940 against the calibration of 1,906; relu3 + relu5, the only pair with 640, 1,722.)
FD_LAYERS = (3, 4)


class BlurPool(nn.Module):
    """Anti-aliased stride-2 downsampling: reflection padding of 2, a 3x3 binomial filter per channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        k = (a[:, None] * a[None, :]) / 16.0
        self.register_buffer("filt", k[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class ShiftTolerantAlexNet(nn.Module):
    """The five relu outputs of the shift-tolerant AlexNet for images in [-1, 1] (B, 3, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(_SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(_SCALE)[None, :, None, None])
        self.conv1 = nn.Conv2d(3, 64, 11, stride=1, padding=2)
        self.blur1 = BlurPool(64)
        self.blur2 = BlurPool(64)
        self.conv2 = nn.Conv2d(64, 192, 5, padding=2)
        self.blur3 = BlurPool(192)
        self.conv3 = nn.Conv2d(192, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)
        self.lins = nn.ModuleList([nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS])

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        r1 = F.relu(self.blur1(self.conv1(x)))
        r2 = F.relu(self.conv2(self.blur2(F.max_pool2d(r1, 3, stride=1))))
        r3 = F.relu(self.conv3(self.blur3(F.max_pool2d(r2, 3, stride=1))))
        r4 = F.relu(self.conv4(r3))
        r5 = F.relu(self.conv5(r4))
        return [r1, r2, r3, r4, r5]


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)


def weights_path() -> Path:
    """Where the installed stlpips-pytorch wheel keeps the shift-tolerant AlexNet (without importing it)."""
    spec = importlib.util.find_spec("stlpips_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the ST-LPIPS weights come from the stlpips-pytorch package: pip install "
                                "stlpips-pytorch (it is in mirage-explorer's dependencies)")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the stlpips-pytorch package has no shift-tolerant AlexNet weights")
    return path


@lru_cache(maxsize=1)
def load_network() -> ShiftTolerantAlexNet:
    """The network with the wheel's weights, in eval mode (shared; do not train it)."""
    state = torch.load(weights_path(), weights_only=True, map_location="cpu")
    names = {"conv1": "net.slice1.0", "conv2": "net.slice2.5", "conv3": "net.slice3.9", "conv4": "net.slice4.11",
             "conv5": "net.slice5.13"}
    ours = {"shift": state["scaling_layer.shift"], "scale": state["scaling_layer.scale"]}
    for mine, theirs in names.items():
        ours[f"{mine}.weight"], ours[f"{mine}.bias"] = state[f"{theirs}.weight"], state[f"{theirs}.bias"]
    for i in range(len(CHANNELS)):
        ours[f"lins.{i}.weight"] = state[f"lin{i}.model.1.weight"]
    net = ShiftTolerantAlexNet()
    missing, unexpected = net.load_state_dict(ours, strict=False)
    assert not unexpected and all(k.endswith("filt") for k in missing), (missing, unexpected)
    return net.eval().requires_grad_(False)


def _images(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@torch.no_grad()
def compare(reference: np.ndarray, others: dict[str, np.ndarray], batch: int = 32
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """LPIPS of each image set in `others` against `reference` (uint8 (N, H, W, 3) each), and the
    fd_alex features of all of them (`reference` under its own key ""), with the reference's
    features computed once per batch: ({name: (N,)}, {name or "": (N, 512)})."""
    if len(reference) == 0:
        width = sum(CHANNELS[k] for k in FD_LAYERS)
        return {k: np.zeros(0) for k in others}, {k: np.zeros((0, width)) for k in ["", *others]}
    net = load_network()
    dists: dict[str, list] = {k: [] for k in others}
    feats: dict[str, list] = {k: [] for k in ["", *others]}
    for i in range(0, len(reference), batch):
        ref = net.features(_images(reference[i:i + batch]))
        ref_unit = [_unit(f) for f in ref]
        feats[""].append(torch.cat([ref_unit[k].mean(dim=(2, 3)) for k in FD_LAYERS], dim=1))
        for name, imgs in others.items():
            unit = [_unit(f) for f in net.features(_images(imgs[i:i + batch]))]
            d = sum(lin((u - r) ** 2).mean(dim=(2, 3)) for lin, u, r in zip(net.lins, unit, ref_unit))
            dists[name].append(d[:, 0])
            feats[name].append(torch.cat([unit[k].mean(dim=(2, 3)) for k in FD_LAYERS], dim=1))
    as_np = lambda xs: torch.cat(xs).numpy().astype(np.float64)  # noqa: E731
    return {k: as_np(v) for k, v in dists.items()}, {k: as_np(v) for k, v in feats.items()}


def lpips(a: np.ndarray, b: np.ndarray, batch: int = 32) -> np.ndarray:
    """ST-LPIPS distance per pair of uint8 (N, H, W, 3) images: (N,) float, 0 for identical images."""
    assert a.shape == b.shape and a.dtype == np.uint8 == b.dtype, f"{a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    return compare(b, {"a": a}, batch)[0]["a"]


def alex_features(rgb: np.ndarray, batch: int = 32) -> np.ndarray:
    """(N, 512) float64: for each image the FD_LAYERS maps, unit-normalised across channels at every
    position (as LPIPS compares them), averaged over positions and concatenated."""
    return compare(rgb, {}, batch)[1][""]


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D):
    |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), the square root taken by eigendecomposition of
    S1^(1/2) S2 S1^(1/2), which is symmetric, so no complex parts appear."""
    assert f1.ndim == f2.ndim == 2 and f1.shape[1] == f2.shape[1], (f1.shape, f2.shape)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
