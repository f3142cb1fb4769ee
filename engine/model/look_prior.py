"""The appearance prior: what a session draws for a room segment nothing was observed of.

A conditional VAE's prior is the unit Gaussian its KL term pulls the codes towards, but at the
KL weight the decoder stages use (1e-4) the posterior's codes sit far from it (mean norm 4.7 for
walls where the Gaussian's is 2.8), so a Gaussian draw is a look the decoder was rarely shown, and
it carries no pattern lock, so the texture field draws it at a frequency the code guesses and
never as a checker. Drawing from the aggregate posterior instead (what "ex-post density
estimation" and the VampPrior do for VAEs) gives looks the decoder knows: here, literally a
table of training segments' looks -- each one's code and pattern lock (whether it is striped or a
checker, and at what frequency), as the posterior and pattern_lock read them off its best view --
from which a draw takes one entry of the segment's class (floor, walls or furniture) with a phase
at random. The table is measured on training worlds only (engine/train/look_prior.py) and kept
with the autoencoder's weights; it is part of the model, like its weights.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from engine.model.pattern_spectrum import LOCK
from engine.model.segments import SEGMENT_CLASSES


class LookPrior(nn.Module):
    """`entries` looks: segment class (entries,) (index into SEGMENT_CLASSES), code (entries, D) and
    pattern lock (entries, LOCK), as buffers saved with the autoencoder."""

    def __init__(self, entries: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("klass", torch.zeros(entries, dtype=torch.int64))
        self.register_buffer("code", torch.zeros(entries, dim))
        self.register_buffer("lock", torch.zeros(entries, LOCK))

    def fill(self, klass: torch.Tensor, code: torch.Tensor, lock: torch.Tensor) -> None:
        """Set the table (from engine/train/look_prior.measure_looks); sizes must match the config's."""
        if not (klass.shape == self.klass.shape and code.shape == self.code.shape and lock.shape == self.lock.shape):
            raise ValueError(f"a look prior of {len(self.klass)} entries cannot hold {len(klass)}")
        missing = [c for c in range(len(SEGMENT_CLASSES)) if not bool((klass == c).any())]
        if missing:
            raise ValueError(f"the looks hold no segment of class {[SEGMENT_CLASSES[c] for c in missing]}")
        self.klass.copy_(klass)
        self.code.copy_(code)
        self.lock.copy_(lock)

    def draw(self, segments: torch.Tensor, generator: torch.Generator | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Looks for the appearance segments `segments` (n,) long -> codes (n, D) and locks (n, LOCK): per
        segment one table entry of its class, uniformly, with a phase drawn at random along each axis
        (an unobserved pattern has no phase to match)."""
        classes = (segments % len(SEGMENT_CLASSES)).cpu()
        table = self.klass.cpu()
        pick = torch.empty(len(segments), dtype=torch.int64)
        for c in range(len(SEGMENT_CLASSES)):
            mine = (classes == c).nonzero()[:, 0]
            if len(mine):
                pool = (table == c).nonzero()[:, 0]
                pick[mine] = pool[torch.randint(len(pool), (len(mine),), generator=generator)]
        lock = self.lock[pick.to(self.lock.device)].clone()
        lock[:, 4:6] = torch.rand(len(segments), 2, generator=generator).to(lock.device)
        return self.code[pick.to(self.code.device)].clone(), lock
