"""Image metrics used by eval, bench and the explorer's live plots.

All take uint8 (H, W, 3) RGB frames, the format at every boundary.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (255 peak); capped at 100 dB for identical frames."""
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 100.0 if mse <= 1e-10 else 10.0 * math.log10(255.0 ** 2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, on luma."""
    x, y = luma(a), luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda im: cv2.GaussianBlur(im, (11, 11), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def gradient_energy(a: np.ndarray) -> float:
    """Mean squared finite difference of luma: falls when frames blur or collapse to flat colour."""
    y = luma(a)
    return float(np.mean(np.diff(y, axis=0) ** 2) + np.mean(np.diff(y, axis=1) ** 2))


def luma(a: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) RGB -> float32 luma (Rec. 601 weights)."""
    a = a.astype(np.float32)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
