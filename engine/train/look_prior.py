"""`mirage train look-prior`: measure the appearance prior a session draws unseen segments from.

The table (engine/model/look_prior.py) holds one entry per segment of the training worlds `seeds`
(a room's floor, walls or furniture): its code and pattern lock read off the view, of `views` at
random free poses, that shows the most of it (a glimpse at a frame's edge reads badly, as the
session's own rule for observations says). Segments never shown enough to read are left out.
Nothing but the table changes: the model written beside it decodes an observed look as before.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from engine.model.look_prior import LookPrior
from engine.model.segments import SEGMENT_CLASSES, segment_masks
from engine.model.world_model import WorldModel
from engine.train.views import looked_views


@torch.no_grad()
def measure_looks(model: WorldModel, seeds: tuple[int, int], views: int, progress: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(class (B,) long, code (B, D), lock (B, LOCK)) of every segment of the worlds, from its best view."""
    klass, codes, locks = [], [], []
    for k, v in enumerate(looked_views(model, seeds, views, torch.Generator().manual_seed(0))):
        area = segment_masks(v.seg).sum((2, 3)) * v.present   # (N, S): pixels of the views that read it
        best = area.argmax(0)                                 # (S,) the view showing most
        for s in (area.amax(0) > 0).nonzero()[:, 0].tolist():
            klass.append(s % len(SEGMENT_CLASSES))
            codes.append(v.code[best[s], s])
            locks.append(v.lock[best[s], s])
        if progress and (k + 1) % 8 == 0:
            print(f"look prior: {k + 1} of {seeds[1] - seeds[0]} worlds, {len(klass)} segments", flush=True)
    if not klass:
        raise ValueError(f"no segment of worlds {seeds[0]}:{seeds[1]} was shown enough to read")
    return torch.tensor(klass), torch.stack(codes).cpu(), torch.stack(locks).cpu()


def build_look_prior(model_dir: str | Path, out: str | Path, seeds: tuple[int, int], views: int,
                     progress: bool = True) -> Path:
    """Measure the look prior of the model in `model_dir` and write the model with it to `out`."""
    src, dst = Path(model_dir), Path(out)
    if dst.resolve() == src.resolve():
        raise ValueError(f"--out {dst} is the source model; write the model with its prior elsewhere")
    model = WorldModel.load(src)
    klass, code, lock = measure_looks(model, seeds, views, progress)
    model.cfg.autoencoder = replace(model.cfg.autoencoder, look_prior=len(klass))
    model.ae.prior = LookPrior(len(klass), model.cfg.autoencoder.appearance_dim)   # replaces any table it had
    model.ae.prior.fill(klass, code, lock)
    model.save(dst)
    return dst
