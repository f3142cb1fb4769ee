"""Memory canvases as inference reads them, precomputed for every frame of every training walk.

The sampler's usual memory canvas (engine/train/world_data.py) is splatted from a dozen earlier
frames of the walk with one depth test. At inference the canvas comes from the session's
LatentMemory instead, holding the whole walk so far: points of many frames merged per 4 cm voxel
(newest wins), free space carved, and a depth test that prefers the point nearest each cell's
centre. On a revisit a third of the cells are then won by points written from nearby poses, whose
latents describe a slightly shifted patch (latents are not view-invariant), and decoding that canvas
as it is stays about 4 dB under the autoencoder's ceiling (MODEL_CARD.md, "What limits the misses").
A generator that only ever saw the training splat has no reason to repair those cells; one trained
on canvases read from a real memory sees exactly the errors it must undo.

So each walk is written frame by frame into a LatentMemory (the real class, the model's voxel size
and capacity, normalised latents, the renderer's cell depth) and read at every
frame's pose before that frame is written: the canvas frame t gets holds frames 0 .. t-1. The
frames a session would generate are written as generated, so, as at inference, they fill gaps but
never overwrite observed points (on a retrace the return reads the outbound frame taken at the
same pose, not the return's own previous frame). Kept in RAM
in fp16 (rebuilt each run, not cached): about 9 KB a frame, 0.4 GB for the default 48 training worlds, and about
1 ms a frame to build (46,000 frames in under a minute).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.memory import LatentMemory
from engine.train.encoded_walks import Walk


@dataclass
class HistoryCanvas:
    canvas: torch.Tensor  # (L, C, S, S) float16, normalised latents; zeros where empty
    mask: torch.Tensor    # (L, S, S) bool, the cells memory covered
    depth: torch.Tensor   # (L, S, S) float16 metres; 0 where empty


@torch.no_grad()
def history_canvases(z: torch.Tensor, depth: torch.Tensor, c2w: torch.Tensor, observe: int, shift: float,
                     scale: float, fov_deg: float, voxel_size: float, capacity: int) -> HistoryCanvas:
    """Canvases of one walk: z (L, C, S, S) raw latents, depth (L, S, S) metres, c2w (L, 4, 4); the
    first `observe` frames are written as observations, the rest as generated frames.

    Entry t is what a session's memory holding frames 0 .. t-1 reads at pose t (entry 0 is empty).
    """
    n, c, s, _ = z.shape
    if depth.shape != (n, s, s) or c2w.shape != (n, 4, 4):
        raise ValueError(f"walk arrays disagree: latents {tuple(z.shape)}, depth {tuple(depth.shape)}, "
                         f"poses {tuple(c2w.shape)}")
    # Every write is kept as written (no skip of recent frames, no keep-drawn rule): the walk's frames
    # are ground truth here, and these canvases are what stage 6 of the v1 model trained on.
    mem = LatentMemory(c, capacity, voxel_size, s, fov_deg, skip_recent_generated=0, keep_drawn_view=False)
    canvas = torch.zeros(n, c, s, s, dtype=torch.float16)
    mask = torch.zeros(n, s, s, dtype=torch.bool)
    mdepth = torch.zeros(n, s, s, dtype=torch.float16)
    for t in range(n):
        pose = c2w[t].float()
        if t > 0:
            cv, m, d = mem.read(pose)
            canvas[t], mask[t], mdepth[t] = cv.half(), m[0] > 0, d[0].half()
        latent = (z[t].float() - shift) / scale
        mem.write(latent, depth[t].float(), pose, t, float(t), observed=t < observe)
    return HistoryCanvas(canvas, mask, mdepth)


def build_history(walks: list[Walk], shift: float, scale: float, fov_deg: float, voxel_size: float, capacity: int,
                  progress: bool = True, workers: int = 0) -> list[HistoryCanvas]:
    """One HistoryCanvas per walk (each walk's `observe` must be known).

    workers > 1 builds walks in that many forked processes: a walk is one memory written frame
    by frame, inherently serial, but walks are independent, and at ~1 ms a frame the ~200,000
    frames of a GPU run's 200 worlds would take over three minutes on one core. Threads do not
    help (measured on 2 cores: 1.7 s serial, 2.4 s with two threads; the Python between the
    kernels holds the GIL). The result is the same as the serial build, walk for walk.
    """
    from tqdm import tqdm

    args = (shift, scale, fov_deg, voxel_size, capacity)
    if workers <= 1 or len(walks) < 2:
        return [history_canvases(w.z, w.depth, w.c2w, w.observe, *args)
                for w in tqdm(walks, desc="memory canvases", disable=not progress)]
    import multiprocessing as mp

    global _FORK_JOB
    _FORK_JOB = (walks, args)  # read by the forked children, never pickled
    try:
        with mp.get_context("fork").Pool(min(workers, len(walks)), initializer=_child_init) as pool:
            parts = list(tqdm(pool.imap(_history_child, range(len(walks))), total=len(walks),
                              desc=f"memory canvases ({workers} processes)", disable=not progress))
    finally:
        _FORK_JOB = None
    return [HistoryCanvas(*(torch.from_numpy(a) for a in part)) for part in parts]


_FORK_JOB: tuple | None = None


def _child_init() -> None:
    torch.set_num_threads(1)  # one process a core; torch's own pool would oversubscribe


def _history_child(i: int) -> tuple:
    walks, args = _FORK_JOB
    w = walks[i]
    h = history_canvases(w.z, w.depth, w.c2w, w.observe, *args)
    # numpy, not torch tensors, through the pipe: torch would pass them as shared-memory file
    # descriptors, one per tensor, and hundreds of walks can exhaust the descriptor limit.
    return h.canvas.numpy(), h.mask.numpy(), h.depth.numpy()
