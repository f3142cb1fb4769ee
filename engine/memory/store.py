"""Bounded latent spatial memory: fixed-capacity point store with voxel merging.

Each latent cell of a frame becomes a world point (lifted with its depth) that
keeps its latent feature vector, frame index, time and whether it was observed
or generated. Storage is preallocated: memory grows with the space explored,
not with time, because a point landing in a voxel that is already held replaces
it in place (newest wins), and when every slot is taken the oldest points go.
One rule on top of "newest wins": a generated point never overwrites an observed
one, so real observations are not eroded by the model's own guesses. And free space
is carved: a point a new frame sees through (clearly nearer than the frame's surface
in its cell) is freed, the same way (a generated frame never carves an observed
point). Without it the model's noisy depth leaves a fog of stale points in front of
surfaces, which win cells they should not and cost every read. Likewise a generated
frame writes only the cells its own read did not show from observed points: there it
re-renders what was observed, and its points, placed with the model's depth, would stand
in front of the observed surface on the next visit (keep_observed_view; on by default).

Reading projects every stored point into the target camera at latent resolution
with a depth test (engine/projection.splat): a warped latent canvas, a coverage
mask and projected depth. No RGB point cloud, no rendering to pixels, no re-encoding.

So that a full memory costs about what an empty one does, the voxel hash and the free
slots are flat arrays worked by numba loops (engine/memory/slots.py), and points are filed
by 0.5 m chunk (engine/memory/chunks.py): a read first tests the chunks' bounding spheres
against the view frustum (a few hundred spheres) and projects only the points of
chunks that can be in view. The canvas is exactly the one projecting every stored
point gives, only cheaper. On the CPU the projection and depth test run as fused numba
loops (engine/memory/kernels.py); on CUDA as the torch ops of engine/projection.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine import projection
from engine.memory import kernels as memory_kernels
from engine.memory.chunks import CHUNK_RADIUS, OFF_SCALE, ChunkIndex, pack_cells
from engine.memory.slots import VoxelSlots
from engine.model.config import MemoryConfig

# A stored point more than this fraction nearer than a new frame's surface in the same cell
# is one the new frame sees through: stale, or depth noise, so it is freed. Chosen on
# training worlds (retrace, out-and-back, turnaround; 0.12 / 0.25 / off), where 0.25 was
# best overall; smaller values also cut real geometry at depth edges.
CARVE_TOL = 0.25


@dataclass
class _View:
    """The memory projected into one camera, kept until the next write changes the memory: a step
    writes at the pose it has just read, so the write's carving and its observed-cells test reuse
    the read's projection and depth test instead of running them again."""
    writes: int                          # the memory's write count when it was projected
    c2w: torch.Tensor
    slot: torch.Tensor                   # in-view points (K,): slot, flat cell, depth, squared centre offset
    flat: torch.Tensor
    z: torch.Tensor
    off: torch.Tensor
    cell: torch.Tensor | None = None     # the depth test's cells (M,), their winning slots, nearest depth
    winners: torch.Tensor | None = None
    zmin: torch.Tensor | None = None
    recent: int | None = None            # the depth test's age filter (see read)


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
    def __init__(self, channels: int, capacity: int = MemoryConfig.capacity,
                 voxel_size: float = MemoryConfig.voxel_size, cells: int = 16,
                 fov_deg: float = 70.0, device: str | torch.device = "cpu",
                 feat_dtype: torch.dtype = torch.float16, carve_tol: float | None = CARVE_TOL,
                 use_kernel: bool = True, keep_observed_view: bool = True,
                 skip_recent_generated: int = MemoryConfig.skip_recent_generated,
                 keep_drawn_view: bool = MemoryConfig.keep_drawn_view) -> None:
        if capacity < cells * cells:   # a frame writes up to one point per latent cell
            raise ValueError(f"memory capacity {capacity} is less than one frame's {cells * cells} latent cells; "
                             f"use at least {cells * cells}")
        if voxel_size <= 0:
            raise ValueError(f"memory voxel_size must be positive, got {voxel_size}")
        self.carve_tol = carve_tol
        self.keep_observed_view = keep_observed_view
        # keep_drawn_view: a generated frame writes only the cells its read showed nothing in, so a
        # place keeps the first drawings of it memory held (an observation, or the generated frames
        # that first showed it) instead of each revisit's copy of them (see _kept_cells). With
        # skip_recent_generated N the read does not show the last N frames' points, so a place in
        # view is drawn by up to N frames after its first drawing, then no more.
        self.keep_drawn_view = keep_drawn_view
        # A read at frame f skips generated points written after frame f - N (N = this; 0: none).
        # Those frames are already the context (the previous latent and its warp); read back as the
        # canvas too, which the generator copies, each frame repeats the last ones' loss of detail
        # (or, trained adversarially, their gain in contrast), and a long walk compounds it.
        self.skip_recent_generated = int(skip_recent_generated)
        self.channels, self.capacity, self.voxel, self.cells, self.fov = channels, capacity, voxel_size, cells, fov_deg
        self.device = torch.device(device)
        self.chunks = ChunkIndex(self.device)
        self.off = torch.zeros(capacity, 3, device=self.device, dtype=torch.int16)  # from the chunk centre
        # On the CPU a read runs as fused numba loops (engine/memory/kernels.py), elsewhere as torch ops.
        self._kernel = self.device.type == "cpu" and memory_kernels.HAVE_NUMBA and use_kernel
        self.feat = torch.zeros(capacity, channels, device=self.device, dtype=feat_dtype)
        self.frame = torch.full((capacity,), -1, dtype=torch.int32, device=self.device)  # -1: free slot
        self.time = torch.full((capacity,), float("-inf"), device=self.device)
        self.observed = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self.chunk = torch.zeros(capacity, dtype=torch.int32, device=self.device)  # dense chunk id per slot
        self.slots = VoxelSlots(capacity)
        self.reset()

    @classmethod
    def from_config(cls, channels: int, config: MemoryConfig, cells: int, fov_deg: float,
                    device: str | torch.device = "cpu", capacity: int | None = None) -> "LatentMemory":
        """The memory a model's config describes (capacity may be overridden, e.g. by the GUI)."""
        return cls(channels, int(capacity or config.capacity), config.voxel_size, cells, fov_deg, device,
                   skip_recent_generated=config.skip_recent_generated, keep_drawn_view=config.keep_drawn_view)

    def reset(self) -> None:
        self.frame.fill_(-1)
        self.observed.zero_()
        self.slots.reset()                               # voxel key <-> slot, free slots
        self._hw = 0                                     # slots at or above this were never used
        self._writes = 0
        self._merged_last = 0
        self._evicted = 0
        self.chunks.reset()
        self._seen: _View | None = None                  # the last projection, for a write at its pose
        self.carved_last = 0

    def __len__(self) -> int:
        return len(self.slots)                          # slots taken = points held

    @property
    def valid(self) -> torch.Tensor:
        """Bool per slot: does it hold a point?"""
        return self.frame >= 0

    def positions(self, slots: torch.Tensor | None = None) -> torch.Tensor:
        """World positions (N, 3) of the given slots (all slots when None)."""
        if slots is None:
            return self.chunks.positions(self.chunk, self.off)
        return self.chunks.positions(self.chunk[slots], self.off[slots])

    def _keys(self, pts: torch.Tensor) -> np.ndarray:
        return pack_cells(torch.floor(pts / self.voxel)).cpu().numpy()

    def write(self, latent: torch.Tensor, depth_cells: torch.Tensor, c2w: torch.Tensor, frame: int, t: float,
              observed: bool) -> int:
        """Store one frame: latent (C, S, S), depth (S, S) metres, c2w (4, 4). Returns points written."""
        c, s, _ = latent.shape
        assert c == self.channels and s == self.cells, f"latent {tuple(latent.shape)} does not match memory"
        d = depth_cells.to(self.device, torch.float32)
        c2w = c2w.to(self.device, torch.float32)
        pts = projection.lift(d[None], c2w[None], self.fov)[0]
        feats = latent.reshape(c, -1).t().to(self.device, self.feat.dtype)
        d = d.reshape(-1)
        ok = torch.isfinite(pts).all(dim=1) & (d > projection.NEAR)
        if not observed and (self.keep_observed_view or self.keep_drawn_view) and len(self.slots):
            ok &= ~self._kept_cells(c2w, frame)
        idx = ok.nonzero().flatten()
        pts, feats = pts[idx], feats[idx]
        # One point per voxel within the frame: the nearest cell's (it is the best-resolved).
        order = torch.argsort(d[idx])
        pts, feats = pts[order], feats[order]
        self.carved_last = self._carve(d, c2w, observed)
        keys = self._keys(pts)
        # One point per voxel (rows are nearest first: the first of each voxel stays), and the
        # slot already holding each voxel, or -1.
        rows_all, held = self.slots.lookup_first(keys)
        hit = held >= 0
        if not observed and hit.any():
            # Keep real observations: a generated frame skips their voxels (one lookup for all).
            obs = self.observed[torch.from_numpy(held[hit]).to(self.device)].cpu().numpy()
            hit[np.flatnonzero(hit)[obs]] = False
        slots, rows = held[hit], rows_all[hit]
        merged = len(slots)
        new_rows = rows_all[held < 0]
        need = len(new_rows) - self.slots.free
        if need > 0:
            # Evict a batch (1/64 of capacity) at a time: choosing the oldest is O(capacity), so
            # doing it every frame once full would make a full memory slower than an empty one.
            self._evict(max(need, self.capacity // 64), protect=slots)
        if len(new_rows):
            slots = np.concatenate([slots, self.slots.take(keys[new_rows])])
            rows = np.concatenate([rows, new_rows])
        if len(slots):
            st = torch.from_numpy(slots).to(self.device)
            rt = torch.from_numpy(rows).to(self.device)
            self.chunk[st], self.off[st] = self.chunks.assign(pts[rt])
            self.feat[st] = feats[rt]
            self.frame[st] = frame
            self.time[st] = t
            self.observed[st] = observed
            self._hw = max(self._hw, int(slots.max()) + 1)
        self._writes += 1
        self._merged_last = merged
        return len(slots)

    def _evict(self, n: int, protect: np.ndarray) -> None:
        """Free the n oldest slots (not those being merged into right now)."""
        age = self.time.clone()
        age[~self.valid] = float("inf")
        if len(protect):
            age[torch.from_numpy(protect).to(self.device)] = float("inf")
        n = min(n, int(torch.isfinite(age).sum()))
        if n <= 0:
            return
        self._release(torch.topk(age, n, largest=False).indices)
        self._evicted += n

    def _release(self, slots: torch.Tensor) -> None:
        if len(slots) == 0:
            return
        self.frame[slots] = -1                           # the one mark of a free slot
        self.slots.release(slots.cpu().numpy())

    def _carve(self, depth_flat: torch.Tensor, c2w: torch.Tensor, observed: bool) -> int:
        """Free the stored points a new frame (cell depths (S*S,), c2w on the memory's device) sees
        through: clearly in front of its surface."""
        if len(self.slots) == 0 or self.carve_tol is None:
            return 0
        v = self._view(c2w)
        slot, flat, z = v.slot, v.flat, v.z
        if self._kernel:
            slots = torch.from_numpy(memory_kernels.carve_select(
                slot.numpy(), flat.numpy(), z.numpy(), depth_flat.numpy(), np.float32(1.0 - self.carve_tol),
                self.observed.numpy(), observed))
        else:
            slots = slot[z < depth_flat[flat] * (1.0 - self.carve_tol)]
            if not observed:
                slots = slots[~self.observed[slots]]
        self._release(slots)
        return len(slots)

    def read(self, c2w: torch.Tensor, frame: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Warped latent canvas (C, S, S), mask (1, S, S) and depth (1, S, S) for a camera c2w (4, 4);
        `frame`, the index of the frame being made, lets the read skip recent generated points."""
        if len(self.slots) == 0:
            z = torch.zeros(1, self.cells, self.cells, device=self.device)
            return torch.zeros(self.channels, self.cells, self.cells, device=self.device), z, z.clone()
        v = self._view(c2w.to(self.device, torch.float32), depth_test=True, recent=self._recent(frame))
        # Features of the (at most S*S) winners only: gathering every visible point's vector
        # was most of the cost of reading a full memory.
        canvas, mask, depth = projection.fill_canvas(v.cell, self.feat[v.winners].float(), v.zmin, 1, self.cells)
        return canvas[0], mask[0], depth[0]

    def observed_cells(self, c2w: torch.Tensor, frame: int | None = None) -> torch.Tensor:
        """(1, S, S) float: 1 in the cells a read at c2w for `frame` shows from an observed point, 0 elsewhere
        (a generated point, or nothing). The decoder draws the two kinds of latent differently
        (engine/model/autoencoder.textured). Reuses the read's projection: no second pass."""
        out = torch.zeros(self.cells * self.cells, device=self.device)
        if len(self.slots):
            v = self._view(c2w.to(self.device, torch.float32), depth_test=True, recent=self._recent(frame))
            out[v.cell] = self.observed[v.winners].float()
        return out.view(1, self.cells, self.cells)

    def _recent(self, frame: int | None) -> int | None:
        """The newest generated frame a read for `frame` may show (None: every point)."""
        return None if frame is None or self.skip_recent_generated <= 0 else frame - self.skip_recent_generated

    def _view(self, c2w: torch.Tensor, depth_test: bool = False, recent: int | None = None) -> _View:
        """The memory projected into c2w (on the memory's device): the last projection while the
        memory and the pose are unchanged, else a new one; with the depth test run if asked, over
        the points not generated after frame `recent` (None: all). Carving never filters."""
        v = self._seen
        if v is None or v.writes != self._writes or not torch.equal(v.c2w, c2w):
            v = self._seen = _View(self._writes, c2w, *self._in_view(c2w))
        if depth_test and (v.cell is None or v.recent != recent):
            slot, flat, z, off = v.slot, v.flat, v.z, v.off
            if self._kernel:   # the recent-frame skip runs inside the kernel
                cell, win, v.zmin = (torch.from_numpy(a) for a in memory_kernels.depth_test(
                    flat.numpy(), z.numpy(), off.numpy(), self.cells * self.cells, projection.SURFACE_TOL,
                    slot.numpy(), self.frame.numpy(), self.observed.numpy(),
                    np.int64(recent if recent is not None else np.iinfo(np.int64).max)))
            else:
                if recent is not None:
                    keep = self.observed[slot] | (self.frame[slot] <= recent)
                    slot, flat, z, off = slot[keep], flat[keep], z[keep], off[keep]
                cell, win, v.zmin = projection.depth_test(flat, z, off, self.cells * self.cells)
            v.cell, v.winners, v.recent = cell, slot[win], recent
        return v

    def _kept_cells(self, c2w: torch.Tensor, frame: int) -> torch.Tensor:
        """Bool (S*S,): the cells a read at c2w shows from an observed point (with keep_drawn_view:
        from any point the read for `frame` may show, observed or generated). A generated frame does
        not write these: there it only re-renders what was observed, with the model's noisy depth,
        and its points would stand in front of the observed surface and win its cells on the next
        visit (measured on the eval retraces: a third of the return's cells lost to them). Only
        cells the read *showed* count: one with an observed point hidden behind a nearer one does
        not (counting those was tried on training worlds 500-503: no better overall, retrace the
        same, out-and-back -0.1 dB, turnaround +0.1)."""
        v = self._view(c2w, depth_test=True, recent=self._recent(frame))   # as the read for this frame saw it
        obs = torch.zeros(self.cells * self.cells, dtype=torch.bool, device=self.device)
        obs[v.cell] = True if self.keep_drawn_view else self.observed[v.winners]
        return obs

    def _in_view(self, c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The stored points landing in the view of c2w: slot (K,), flat cell, depth, squared offset
        from the cell centre. Only points of chunks that pass the frustum test are projected."""
        hw = self._hw  # live points sit below the high-water mark of slots ever used
        if self._kernel:
            out = memory_kernels.visible_points(
                hw, self.frame.numpy(), self.chunk.numpy(), len(self.chunks), CHUNK_RADIUS, self.off.numpy(),
                OFF_SCALE, self.chunks.centres.numpy(), c2w.double().numpy(), float(self.fov), self.cells,
                projection.NEAR)
            return tuple(torch.from_numpy(a) for a in out)
        chunk_ok = self.chunks.in_frustum(c2w, self.fov)
        sel = (chunk_ok[self.chunk[:hw].long()] & (self.frame[:hw] >= 0)).nonzero().squeeze(1)
        flat, z, off, keep = projection.project_visible(
            self.positions(sel)[None], torch.ones(1, len(sel), dtype=torch.bool, device=self.device),
            c2w[None], self.cells, self.fov)
        return sel[keep], flat, z, off

    def stats(self) -> MemoryStats:
        # int16 offsets, feature, frame (-1 marks a free slot), time, observed, chunk id: every
        # byte a point holds (the chunk table is per chunk, a few hundred entries, not per point)
        per_point = 3 * self.off.element_size() + self.channels * self.feat.element_size() + 4 + 4 + 1 + 4
        return MemoryStats(len(self.slots), self.capacity, self.capacity * per_point, self._writes,
                           self._merged_last, self._evicted)

    def points(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Valid points (N, 3), their times (N,) and observed flags (N,): for the minimap."""
        v = self.valid
        return self.positions()[v], self.time[v], self.observed[v]
