"""Bounded latent spatial memory: fixed-capacity point store with voxel merging.

Each latent cell of a frame becomes a world point (lifted with its depth) that
keeps its latent feature vector, frame index, time and whether it was observed
or generated. Storage is preallocated: memory grows with the space explored,
not with time, because a point landing in a voxel that is already held replaces
it in place (newest wins), and when every slot is taken the oldest points go.
One rule on top of "newest wins": a generated point never overwrites an observed
one, so real observations are not eroded by the model's own guesses.

Reading projects every stored point into the target camera at latent resolution
with a depth test (engine/projection.splat): a warped latent canvas, a coverage
mask and projected depth. No RGB point cloud, no rendering to pixels, no re-encoding.

So that a full memory costs about what an empty one does, points are also filed by
1 m chunk: a read first tests the chunks' bounding spheres against the view frustum
(a few hundred spheres) and projects only the points of chunks that can be in view.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import torch

from engine import projection

CHUNK = 1.0   # metres: edge of the cubes points are filed by for frustum culling


@dataclass
class MemoryStats:
    points: int
    capacity: int
    bytes: int
    writes: int
    merged_last: int
    evicted_total: int

    @property
    def fill(self) -> float:
        return self.points / self.capacity if self.capacity else 0.0

    def as_dict(self) -> dict:
        return {"points": self.points, "capacity": self.capacity, "fill": self.fill, "bytes": self.bytes,
                "writes": self.writes, "merged_last": self.merged_last, "evicted_total": self.evicted_total}


class LatentMemory:
    def __init__(self, channels: int, capacity: int = 65536, voxel_size: float = 0.08, cells: int = 16,
                 fov_deg: float = 70.0, device: str | torch.device = "cpu",
                 feat_dtype: torch.dtype = torch.float16) -> None:
        if capacity < 1:
            raise ValueError(f"memory capacity must be at least 1, got {capacity}")
        if voxel_size <= 0:
            raise ValueError(f"memory voxel_size must be positive, got {voxel_size}")
        self.channels, self.capacity, self.voxel, self.cells, self.fov = channels, capacity, voxel_size, cells, fov_deg
        self.device = torch.device(device)
        self.pos = torch.zeros(capacity, 3, device=self.device)
        self.feat = torch.zeros(capacity, channels, device=self.device, dtype=feat_dtype)
        self.frame = torch.full((capacity,), -1, dtype=torch.int32, device=self.device)
        self.time = torch.full((capacity,), float("-inf"), device=self.device)
        self.observed = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.valid = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.chunk = torch.zeros(capacity, dtype=torch.int32, device=self.device)  # dense chunk id per slot
        self.reset()

    def reset(self) -> None:
        self.valid.zero_()
        self.time.fill_(float("-inf"))
        self.frame.fill_(-1)
        self.observed.zero_()
        self._slot_of: dict[int, int] = {}               # voxel key -> slot
        self._key_of = [None] * self.capacity            # slot -> voxel key
        self._free = list(range(self.capacity - 1, -1, -1))
        self._count = 0
        self._hw = 0                                     # slots at or above this were never used
        self._writes = 0
        self._merged_last = 0
        self._evicted = 0
        self._chunk_id: dict[tuple[int, int, int], int] = {}
        self._chunk_centres = torch.zeros(64, 3, device=self.device)

    def __len__(self) -> int:
        return self._count

    def _keys(self, pts: torch.Tensor) -> list[int]:
        q = torch.floor(pts / self.voxel).long() + (1 << 20)
        return ((q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2]).tolist()

    def write(self, latent: torch.Tensor, depth_cells: torch.Tensor, c2w: torch.Tensor, frame: int, t: float,
              observed: bool) -> int:
        """Store one frame: latent (C, S, S), depth (S, S) metres, c2w (4, 4). Returns points written."""
        c, s, _ = latent.shape
        assert c == self.channels and s == self.cells, f"latent {tuple(latent.shape)} does not match memory"
        pts = projection.lift(depth_cells[None].to(self.device), c2w[None].to(self.device), self.fov)[0]
        feats = latent.reshape(c, -1).t().to(self.device, self.feat.dtype)
        keep = torch.isfinite(pts).all(dim=1) & (depth_cells.reshape(-1).to(self.device) > projection.NEAR)
        idx = keep.nonzero().flatten()
        pts, feats = pts[idx], feats[idx]
        # One point per voxel within the frame: the nearest cell's (it is the best-resolved).
        order = torch.argsort(depth_cells.reshape(-1).to(self.device)[idx])
        pts, feats = pts[order], feats[order]
        keys = self._keys(pts)
        chosen, seen = [], set()
        for i, k in enumerate(keys):
            if k not in seen:
                seen.add(k)
                chosen.append(i)
        slots, rows, merged = [], [], 0
        new_rows = []
        for i in chosen:
            k = keys[i]
            slot = self._slot_of.get(k)
            if slot is None:
                new_rows.append(i)
                continue
            if self.observed[slot] and not observed:
                continue                                  # keep the real observation
            slots.append(slot)
            rows.append(i)
            merged += 1
        need = len(new_rows) - len(self._free)
        if need > 0:
            # Evict a batch (1/64 of capacity) at a time: choosing the oldest is O(capacity), so
            # doing it every frame once full would make a full memory slower than an empty one.
            self._evict(max(need, self.capacity // 64), protect=slots)
        for i in new_rows:
            slot = self._free.pop()
            self._slot_of[keys[i]] = slot
            self._key_of[slot] = keys[i]
            slots.append(slot)
            rows.append(i)
        self._count += len(new_rows)
        if slots:
            st = torch.tensor(slots, device=self.device)
            rt = torch.tensor(rows, device=self.device)
            self.pos[st] = pts[rt]
            self.feat[st] = feats[rt]
            self.frame[st] = frame
            self.time[st] = t
            self.observed[st] = observed
            self.valid[st] = True
            self.chunk[st] = self._chunk_ids(pts[rt])
            self._hw = max(self._hw, max(slots) + 1)
        self._writes += 1
        self._merged_last = merged
        return len(slots)

    def _evict(self, n: int, protect: list[int]) -> None:
        """Free the n oldest slots (not those being merged into right now)."""
        age = self.time.clone()
        age[~self.valid] = float("inf")
        if protect:
            age[torch.tensor(protect, device=self.device)] = float("inf")
        n = min(n, int(torch.isfinite(age).sum()))
        if n <= 0:
            return
        old = torch.topk(age, n, largest=False).indices
        self.valid[old] = False
        self.time[old] = float("-inf")
        for slot in old.tolist():
            k = self._key_of[slot]
            if k is not None and self._slot_of.get(k) == slot:
                del self._slot_of[k]
            self._key_of[slot] = None
            self._free.append(slot)
        self._count -= n
        self._evicted += n

    def _chunk_ids(self, pts: torch.Tensor) -> torch.Tensor:
        """Dense ids of the chunks holding points (N, 3); new chunks are registered with their centres."""
        # A frame's points fall in a handful of chunks: look those up, not every point.
        cubes, inverse = torch.unique(torch.floor(pts / CHUNK).long(), dim=0, return_inverse=True)
        ids = []
        for key in map(tuple, cubes.tolist()):
            cid = self._chunk_id.get(key)
            if cid is None:
                cid = self._chunk_id[key] = len(self._chunk_id)
                if cid >= len(self._chunk_centres):
                    grown = torch.zeros(2 * len(self._chunk_centres), 3, device=self.device)
                    grown[:cid] = self._chunk_centres
                    self._chunk_centres = grown
                self._chunk_centres[cid] = (torch.tensor(key, dtype=torch.float32) + 0.5) * CHUNK
            ids.append(cid)
        return torch.tensor(ids, dtype=torch.int32, device=self.device)[inverse]

    def _visible_chunks(self, c2w: torch.Tensor) -> torch.Tensor:
        """Bool per chunk id: may its cube be inside the camera's frustum (bounding-sphere test)?"""
        n = len(self._chunk_id)
        cam = (self._chunk_centres[:n] - c2w[:3, 3]) @ c2w[:3, :3]         # world -> camera
        r = CHUNK * math.sqrt(3) / 2
        tan = math.tan(math.radians(self.fov) / 2)                           # square image: same both ways
        depth = -cam[:, 2]
        k = 1.0 / math.sqrt(1 + tan * tan)                                   # side planes' normal scale
        side = torch.maximum(cam[:, 0].abs(), cam[:, 1].abs())
        return (depth > projection.NEAR - r) & ((side - tan * depth) * k < r)

    def read(self, c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Warped latent canvas (C, S, S), mask (1, S, S) and depth (1, S, S) for a camera c2w (4, 4)."""
        if self._count == 0:
            z = torch.zeros(1, self.cells, self.cells, device=self.device)
            return torch.zeros(self.channels, self.cells, self.cells, device=self.device), z, z.clone()
        c2w = c2w.to(self.device, torch.float32)
        hw = self._hw  # free slots are handed out lowest first, so live points sit below the high-water mark
        sel = (self._visible_chunks(c2w)[self.chunk[:hw]] & self.valid[:hw]).nonzero().squeeze(1)
        cell, point, zmin = projection.splat_index(self.pos[sel][None],
                                                   torch.ones(1, len(sel), dtype=torch.bool, device=self.device),
                                                   c2w[None], self.cells, self.fov)
        # Features of the (at most S*S) winners only: gathering every visible point's vector
        # was most of the cost of reading a full memory.
        canvas, mask, depth = projection.fill_canvas(cell, self.feat[sel[point]].float(), zmin, 1, self.cells)
        return canvas[0], mask[0], depth[0]

    def stats(self) -> MemoryStats:
        # position, feature, frame, time, observed, valid, chunk id: every byte a point holds
        per_point = 3 * 4 + self.channels * self.feat.element_size() + 4 + 4 + 1 + 1 + 4
        return MemoryStats(self._count, self.capacity, self.capacity * per_point, self._writes,
                           self._merged_last, self._evicted)

    def points(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Valid points (N, 3), their times (N,) and observed flags (N,): for the minimap."""
        v = self.valid
        return self.pos[v], self.time[v], self.observed[v]
