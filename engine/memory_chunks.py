"""The 1 m chunks the latent memory files its points by, and the frustum test on them.

A read of a full memory would otherwise project every stored point, most of which
the camera cannot see. The test is conservative (a chunk is skipped only when its
cube's bounding sphere lies outside the view frustum), so a read stays exactly equal
to projecting every point.

Positions are stored as float16 offsets from their chunk's centre (6 bytes instead of
12; a 1 m cube keeps them to a quarter of a millimetre), so the chunk table is also
what turns a stored point back into a world position.
"""
from __future__ import annotations

import math

import torch

from engine import projection

CHUNK = 1.0   # metres: edge of the cubes points are filed by


class ChunkIndex:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self._id: dict[tuple[int, int, int], int] = {}
        self.centres = torch.zeros(64, 3, device=self.device)

    def __len__(self) -> int:
        return len(self._id)

    def _grow(self, n: int) -> None:
        if n <= len(self.centres):
            return
        size = len(self.centres)
        while size < n:
            size *= 2
        grown = torch.zeros(size, 3, device=self.device)
        grown[:len(self.centres)] = self.centres
        self.centres = grown

    def assign(self, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunk ids (N,) int32 and float16 offsets (N, 3) for world points (N, 3)."""
        # A frame's points fall in a handful of chunks: look those up, not every point.
        cubes, inverse = torch.unique(torch.floor(pts / CHUNK).long(), dim=0, return_inverse=True)
        ids = []
        for key in map(tuple, cubes.tolist()):
            cid = self._id.get(key)
            if cid is None:
                cid = self._id[key] = len(self._id)
                self._grow(cid + 1)
                self.centres[cid] = (torch.tensor(key, dtype=torch.float32) + 0.5) * CHUNK
            ids.append(cid)
        cid = torch.tensor(ids, dtype=torch.long, device=self.device)[inverse]
        return cid.to(torch.int32), (pts - self.centres[cid]).to(torch.float16)

    def positions(self, chunk: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        """World positions (N, 3) float32 of points stored as chunk ids (N,) and offsets (N, 3)."""
        return self.centres[chunk.long()] + off.float()

    def in_frustum(self, c2w: torch.Tensor, fov_deg: float) -> torch.Tensor:
        """Bool per chunk id: may its cube be inside the camera's frustum (bounding-sphere test)?"""
        n = len(self._id)
        cam = (self.centres[:n] - c2w[:3, 3]) @ c2w[:3, :3]                 # world -> camera
        r = CHUNK * math.sqrt(3) / 2
        tan = math.tan(math.radians(fov_deg) / 2)                           # square image: same both ways
        depth = -cam[:, 2]
        k = 1.0 / math.sqrt(1 + tan * tan)                                  # side planes' normal scale
        side = torch.maximum(cam[:, 0].abs(), cam[:, 1].abs())
        return (depth > projection.NEAR - r) & ((side - tan * depth) * k < r)
