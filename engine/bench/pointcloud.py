"""The memory our seeds' comparison is against: an RGB point cloud, as Voyager, Gen3C and
WonderWorld keep one (Mirage's paper measures against the same family).

Every pixel of every stored frame becomes a coloured 3D point (position float32 x3,
colour uint8 x3: 15 bytes; no merging, so it grows with time). Reading renders the
cloud into the target view at full image resolution with a z-buffer (nearest point
wins per pixel) and re-encodes that render with our own encoder, which is what a
point-cloud memory must do before a latent generator can use it. Used only by
`mirage bench`; the product's memory is engine/memory/store.py.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from engine.model.autoencoder import to_model_image

BYTES_PER_POINT = 3 * 4 + 3


class RGBPointCloudMemory:
    def __init__(self, size: int, fov_deg: float, device: str | torch.device = "cpu", initial: int = 1 << 20) -> None:
        self.size, self.fov, self.device = size, fov_deg, torch.device(device)
        self.pos = torch.empty(initial, 3, device=self.device)
        self.rgb = torch.empty(initial, 3, dtype=torch.uint8, device=self.device)
        self.count = 0
        self.frames = 0
        f = 0.5 * size / math.tan(math.radians(fov_deg) / 2.0)
        c = (torch.arange(size, dtype=torch.float32, device=self.device) + 0.5 - 0.5 * size) / f
        y, x = torch.meshgrid(-c, c, indexing="ij")
        self._rays = torch.stack([x, y, -torch.ones_like(x)], -1).reshape(-1, 3)   # camera frame, z = -1
        self._f = f

    @property
    def bytes(self) -> int:
        return self.count * BYTES_PER_POINT

    def write(self, rgb: np.ndarray, depth: np.ndarray, c2w: torch.Tensor) -> None:
        """Store every pixel with a valid depth: rgb (H, W, 3) uint8, depth (H, W) metres."""
        d = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32)).reshape(-1).to(self.device)
        keep = torch.isfinite(d) & (d > 0.05)
        cam = self._rays[keep] * d[keep, None]
        pts = cam @ c2w[:3, :3].T.to(self.device) + c2w[:3, 3].to(self.device)
        n = len(pts)
        if self.count + n > len(self.pos):           # grow like a list: amortised O(1) per point
            cap = max(2 * len(self.pos), self.count + n)
            self.pos = torch.cat([self.pos[:self.count], torch.empty(cap - self.count, 3, device=self.device)])
            self.rgb = torch.cat([self.rgb[:self.count],
                                  torch.empty(cap - self.count, 3, dtype=torch.uint8, device=self.device)])
        self.pos[self.count:self.count + n] = pts
        self.rgb[self.count:self.count + n] = torch.from_numpy(np.ascontiguousarray(rgb)).reshape(-1, 3)[
            keep.cpu()].to(self.device)
        self.count += n
        self.frames += 1

    def render(self, c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Z-buffered render of the cloud: rgb (H, W, 3) uint8 (black holes) and coverage (H, W) bool."""
        s = self.size
        c2w = c2w.to(self.device)
        cam = (self.pos[:self.count] - c2w[:3, 3]) @ c2w[:3, :3]
        z = -cam[:, 2]
        zs = z.clamp(min=0.05)
        u = cam[:, 0] / zs * self._f + 0.5 * s
        v = -cam[:, 1] / zs * self._f + 0.5 * s
        ok = ((z > 0.05) & (u >= 0) & (u < s) & (v >= 0) & (v < s)).nonzero().squeeze(1)
        idx = v[ok].long() * s + u[ok].long()
        zk = z[ok]
        zbuf = torch.full((s * s,), float("inf"), device=self.device)
        zbuf.scatter_reduce_(0, idx, zk, reduce="amin", include_self=True)
        win = zk <= zbuf[idx]
        img = torch.zeros(s * s, 3, dtype=torch.uint8, device=self.device)
        img[idx[win]] = self.rgb[ok[win]]
        return img.reshape(s, s, 3), torch.isfinite(zbuf).reshape(s, s)

    @torch.no_grad()
    def read(self, c2w: torch.Tensor, encode) -> torch.Tensor:
        """Render into the target view and re-encode: the latent canvas a generator would get."""
        img, _ = self.render(c2w)
        return encode(to_model_image(img[None]).to(self.device))
