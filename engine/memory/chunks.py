"""The 0.5 m chunks the latent memory files its points by, and the frustum test on them.

A read of a full memory would otherwise project every stored point, most of which
the camera cannot see. The test is conservative (a chunk is skipped only when its
cube's bounding sphere lies outside the view frustum), so a read stays exactly equal
to projecting every point.

Positions are stored as 16-bit fixed-point offsets from their chunk's centre (6 bytes
instead of 12; steps of CHUNK / 2^16, under 8 micrometres, across the cube), so the chunk table
is also what turns a stored point back into a world position. Fixed point rather than
float16: the same size, uniform precision, and the CPU read kernel (numba, which has no
float16) reads it directly.
"""
from __future__ import annotations

import math

import torch

from engine import projection

CHUNK = 0.5   # metres: edge of the cubes points are filed by (0.5 m: tighter spheres than 1 m,
              # so a read projects fewer points the camera cannot see; measured in docs/BENCHMARKS.md)
OFF_SCALE = CHUNK / 65536.0   # metres per step of a stored int16 offset (half a chunk either way fits)
CHUNK_RADIUS = CHUNK * math.sqrt(3) / 2   # a cube's bounding sphere, for the frustum test
_BIAS = 1 << 20               # grid coordinates are packed into one int64 key, 21 bits each


def pack_cells(q: torch.Tensor) -> torch.Tensor:
    """One non-negative int64 key (N,) per integer grid cell (N, 3): the memory's voxel keys and
    the chunk keys. A 1-D key is far cheaper to unique or hash than rows of three."""
    q = q.long() + _BIAS
    return (q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2]


def unpack_cell(key: int) -> tuple[int, int, int]:
    """The grid cell (x, y, z) of a key made by pack_cells."""
    return (key >> 42) - _BIAS, ((key >> 21) & 0x1FFFFF) - _BIAS, (key & 0x1FFFFF) - _BIAS


class ChunkIndex:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self._id: dict[int, int] = {}                 # packed cube key -> dense chunk id
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
        """Chunk ids (N,) int32 and int16 offsets (N, 3) (times OFF_SCALE metres) for world points (N, 3)."""
        # A frame's points fall in a handful of chunks: look those up, not every point.
        keys, inverse = torch.unique(pack_cells(torch.floor(pts / CHUNK)), return_inverse=True)
        ids = []
        for key in keys.tolist():
            cid = self._id.get(key)
            if cid is None:
                cid = self._id[key] = len(self._id)
                self._grow(cid + 1)
                self.centres[cid] = (torch.tensor(unpack_cell(key), dtype=torch.float32) + 0.5) * CHUNK
            ids.append(cid)
        cid = torch.tensor(ids, dtype=torch.long, device=self.device)[inverse]
        off = torch.round((pts - self.centres[cid]) / OFF_SCALE).clamp_(-32768, 32767)
        return cid.to(torch.int32), off.to(torch.int16)

    def positions(self, chunk: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        """World positions (N, 3) float32 of points stored as chunk ids (N,) and offsets (N, 3)."""
        return self.centres[chunk.long()] + off.float() * OFF_SCALE

    def in_frustum(self, c2w: torch.Tensor, fov_deg: float) -> torch.Tensor:
        """Bool per chunk id: may its cube be inside the camera's frustum (bounding-sphere test)?"""
        n = len(self._id)
        cam = (self.centres[:n] - c2w[:3, 3]) @ c2w[:3, :3]                 # world -> camera
        r = CHUNK_RADIUS
        tan = math.tan(math.radians(fov_deg) / 2)                           # square image: same both ways
        depth = -cam[:, 2]
        k = 1.0 / math.sqrt(1 + tan * tan)                                  # side planes' normal scale
        side = torch.maximum(cam[:, 0].abs(), cam[:, 1].abs())
        return (depth > projection.NEAR - r) & ((side - tan * depth) * k < r)
