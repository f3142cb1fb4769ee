"""Training examples for the generator: walks that revisit places, encoded once.

Each training world contributes one walk of every trajectory kind (turn-arounds,
retraces, out-and-back loops, explore walks with returns), so the model sees
what memory is for: places seen before, from the same or new positions. Frames
are rendered on the machine that trains and encoded by the frozen autoencoder;
latents (fp16), latent-cell depth and poses stay in RAM, the pixels are dropped.

A batch element is a target frame T of one walk with:
  - the previous frame T-1 (its latent noised, as in GameNGen/DIAMOND, so long
    rollouts don't drift on their own errors),
  - a memory canvas splatted from a subset of earlier frames chosen mostly among
    those looking at the same place (dropped entirely 20% of the time, so
    memory off is a mode of the same model), or, for a share of examples, the
    canvas a real LatentMemory holding the walk so far reads (engine/train/history.py),
  - for a generator that takes the layout: the target view's scene layout (dropped a share of
    the time, so layout off is a mode of the same model), and a share of examples with no
    previous frame and no memory at all, which is how a session with the layout on makes a
    world's first frame before anything was observed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine import projection
from engine.model.conditioning import condition, warp_prev, with_channels
from engine.train.decoder import soften
from engine.train.encoded_walks import Walk
from engine.train.history import HistoryCanvas


class WalkSampler:
    """Draws batches (target latent, conditioning) from encoded walks."""

    def __init__(self, walks: list[Walk], cells: int, fov_deg: float, shift: float, scale: float,
                 rng: np.random.Generator, mem_frames: int = 12, p_drop_memory: float = 0.2,
                 context_noise: float = 0.1, context_blur: float = 0.0,
                 history: list[HistoryCanvas] | None = None, history_share: float = 0.0,
                 layout: bool = False, p_drop_layout: float = 0.15, p_no_prev: float = 0.05) -> None:
        if history_share > 0 and (history is None or len(history) != len(walks)):
            raise ValueError("history_share > 0 needs one history canvas set per walk (engine/train/history.py)")
        self.walks, self.cells, self.fov = walks, cells, fov_deg
        # Share of examples with memory whose canvas is read from a real LatentMemory holding the
        # whole walk so far (engine/train/history.py) rather than splatted from a few frames.
        self.history, self.p_hist = history, history_share
        self.shift, self.scale, self.rng = shift, scale, rng
        self.m, self.p_drop, self.noise, self.p_blur = mem_frames, p_drop_memory, context_noise, context_blur
        if layout and any(w.layout is None for w in walks):
            raise ValueError("the generator takes the scene layout, but these encoded walks have none: "
                             "delete the run's walks.safetensors so they are rebuilt with it")
        self.layout, self.p_drop_layout, self.p_no_prev = layout, p_drop_layout, p_no_prev
        lens = np.array([len(w.z) - 1 for w in walks], dtype=np.float64)
        self.p = lens / lens.sum()

    def _memory_frames(self, w: Walk, t: int) -> list[int]:
        if self.rng.random() < self.p_drop or t < 1:
            return []
        earlier = np.arange(t)
        near = np.linalg.norm(w.pos[:t] - w.pos[t], axis=1) < 3.0
        facing = w.fwd[:t] @ w.fwd[t] > math.cos(math.radians(60))
        rel = earlier[near & facing]
        picks = set()
        if self.rng.random() < 0.85:
            picks.add(t - 1)
        if len(rel):
            picks.update(self.rng.choice(rel, size=min(len(rel), self.m - 4), replace=False).tolist())
        picks.update(self.rng.choice(earlier, size=min(t, 3), replace=False).tolist())
        return sorted(picks)[-self.m:]

    def _context(self, z: torch.Tensor) -> torch.Tensor:
        """The previous latent (C, S, S) as context: as it is, or (with probability context_blur)
        softened like the model's own frames, so that it learns to restore detail instead of passing
        blur on. Why: with clean (only noised) context the generator is good one frame ahead
        (teacher-forced sharpness 0.29 of ground truth on training world 500, the autoencoder's own
        0.36), but fed its own slightly smoother frames it smooths them further, and a walk into
        unseen space lost all detail within about 7 frames (0.33 -> 0.07). Noise alone, as GameNGen
        and DIAMOND use, does not teach it to undo blur. Memory frames are not softened: doing so
        (2026-11-21, docs/MODEL.md) taught the model to rework the memory canvas, and revisits lost
        1-2 dB."""
        z = z.float()
        if self.p_blur <= 0 or self.rng.random() >= self.p_blur:
            return z
        return soften(z, float(self.rng.random()), int(self.rng.integers(1, 3)))

    def batch(self, b: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(target x0 (B, C, S, S), cond (B, K, S, S)), all normalised."""
        picks = []
        for _ in range(b):
            wi = int(self.rng.choice(len(self.walks), p=self.p))
            picks.append((wi, int(self.rng.integers(1, len(self.walks[wi].z)))))
        x0, cond, _ = self.batch_at(picks, device, no_prev_share=self.p_no_prev if self.layout else 0.0)
        return x0, cond

    def draw(self, b: int, self_rollout: int, device):
        """The next training item: a plain batch (x0, cond), or, half the time when `self_rollout` K > 0,
        a chain of 2..K+1 consecutive links (all but the last to be generated by the model, the last
        trained on). The in-process trainer and the batch workers both draw through here."""
        if self_rollout > 0 and self.rng.random() < 0.5:
            return self.chain(b, int(self.rng.integers(2, self_rollout + 2)), device)
        return self.batch(b, device)

    def chain(self, b: int, k: int, device) -> list[tuple[torch.Tensor, torch.Tensor, "PrevGeometry"]]:
        """k consecutive targets per element (frames t-k+1 .. t of one walk), for training on the
        model's own rollouts: the trainer generates the earlier ones and feeds each back as the
        next one's context (`replace_prev`), as at inference, where drift comes from."""
        picks = []
        for _ in range(b):
            while True:
                wi = int(self.rng.choice(len(self.walks), p=self.p))
                if len(self.walks[wi].z) > k:
                    break
            picks.append((wi, int(self.rng.integers(k, len(self.walks[wi].z)))))
        return [self.batch_at([(wi, t - k + 1 + j) for wi, t in picks], device) for j in range(k)]

    def batch_at(self, picks: list[tuple[int, int]], device,
                 no_prev_share: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, "PrevGeometry"]:
        """The batch for explicit (walk index, target frame) picks; also what `replace_prev` needs.
        A `no_prev_share` of elements have no previous frame and no memory (a first frame)."""
        b = len(picks)
        s, n_cell = self.cells, self.cells * self.cells
        c = self.walks[0].z.shape[1]
        tgt, prev, prev_d, prev_c2w, tgt_c2w = [], [], [], [], []
        mem_pts = torch.zeros(b, self.m * n_cell, 3)
        mem_feat = torch.zeros(b, self.m * n_cell, c)
        mem_valid = torch.zeros(b, self.m * n_cell, dtype=torch.bool)
        from_history, no_prev, layouts = [], [], []
        for i, (wi, t) in enumerate(picks):
            w = self.walks[wi]
            tgt.append(w.z[t])
            prev.append(self._context(w.z[t - 1]))
            jitter = 1.0 + 0.04 * self.rng.standard_normal()  # generated frames carry predicted, imperfect depth
            prev_d.append(w.depth[t - 1] * jitter)
            prev_c2w.append(w.c2w[t - 1])
            tgt_c2w.append(w.c2w[t])
            if self.layout:
                drop = self.rng.random() < self.p_drop_layout
                layouts.append(torch.zeros_like(w.layout[t]) if drop else w.layout[t])
                if not drop and no_prev_share > 0 and self.rng.random() < no_prev_share:
                    no_prev.append(i)
                    prev_c2w[-1] = w.c2w[t]   # rays of a view relative to itself
            frames = [] if no_prev and no_prev[-1] == i else self._memory_frames(w, t)
            if frames and self.p_hist > 0 and self.rng.random() < self.p_hist:
                from_history.append(i)
                frames = []
            if frames:
                f = torch.tensor(frames)
                dj = torch.from_numpy(1.0 + 0.04 * self.rng.standard_normal((len(frames), 1, 1)).astype(np.float32))
                pts = projection.lift(w.depth[f] * dj, w.c2w[f], self.fov).reshape(-1, 3)
                k = len(pts)
                mem_pts[i, :k] = pts
                mem_feat[i, :k] = w.z[f].float().flatten(2).transpose(1, 2).reshape(-1, c)
                mem_valid[i, :k] = True
        norm = lambda z: (torch.stack(z).float() - self.shift) / self.scale  # noqa: E731
        x0, prev_z = norm(tgt), norm(prev)
        mem_feat = (mem_feat - self.shift) / self.scale
        tc, pc = torch.stack(tgt_c2w), torch.stack(prev_c2w)
        canvas, mask, mdepth = projection.splat(mem_pts, mem_feat, mem_valid, tc, s, self.fov)
        for i in from_history:
            h = self.history[picks[i][0]]
            t = picks[i][1]
            canvas[i], mask[i], mdepth[i] = h.canvas[t].float(), h.mask[t][None].float(), h.depth[t][None].float()
        # Memory may hold the model's own (imperfect) frames at inference: noise it a little too, a
        # random level per example, on the covered cells of whichever canvas it got.
        canvas = canvas + torch.rand(b, 1, 1, 1) * 0.15 * torch.randn_like(canvas) * mask
        geo = PrevGeometry(projection.lift(torch.stack(prev_d), pc, self.fov), tc, s, self.fov, self.noise)
        lay = torch.stack(layouts).float() if self.layout else None
        cond = condition(geo.noised(prev_z), geo.points, pc, tc, canvas, mask, mdepth, self.fov, lay)
        if no_prev:
            # No previous frame: its three groups are zeros, as condition() builds them for a first frame.
            idx = torch.tensor(no_prev)
            cond[idx] = condition(None, None, pc[idx], tc[idx], canvas[idx], mask[idx], mdepth[idx], self.fov,
                                  lay[idx])
        return x0.to(device), cond.to(device), geo


@dataclass
class PrevGeometry:
    """Where the previous frame's cells land in the target view, to rebuild its conditioning."""
    points: torch.Tensor   # (B, S*S, 3) the previous frame's cells lifted to the world
    target: torch.Tensor   # (B, 4, 4) target camera-to-world
    cells: int
    fov: float
    noise: float

    def noised(self, z: torch.Tensor) -> torch.Tensor:
        # GameNGen/DIAMOND-style context noise, a random level per element.
        return z + torch.rand(len(z), 1, 1, 1, device=z.device) * 2 * self.noise * torch.randn_like(z)

    def warp(self, prev_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return warp_prev(prev_z, self.points.to(prev_z.device), self.target.to(prev_z.device), self.cells, self.fov)


def replace_prev(cond: torch.Tensor, geo: PrevGeometry, new_prev: torch.Tensor) -> torch.Tensor:
    """The same conditioning with another previous latent (e.g. the model's own): context
    and its warp are rebuilt, memory, masks and rays stay."""
    z = geo.noised(new_prev)
    warp, _ = geo.warp(z)
    return with_channels(cond, z.shape[1], prev=z, prev_warp=warp)
