"""Training batches built in worker processes, so a GPU is not left waiting on the CPU.

A WalkSampler batch is assembled on the CPU: per element, memory frames are chosen, lifted and
splatted into the target view, the previous frame is warped, the Plücker rays are built. On the
project's 2-core machine that is ~19 ms for 32 examples on one thread (1,700 examples/s), a small
part of a 0.4 s CPU training step. On a GPU the network step takes a few milliseconds and one
process building batches would leave it idle most of the time, so `mirage train world --workers N`
(default on CUDA: the machine's cores less two, at most 12) builds batches in N forked processes.

With `self_rollout` K > 0 a worker yields, half the time, a chain of 2..K+1 consecutive links
instead of a plain batch (`WalkSampler.draw`, as the in-process trainer draws them): the trainer generates the earlier links with the
model (which lives in the training process) and trains on the last one, so rollout training keeps
its batches built in parallel too.

Each worker draws from its own random stream (the run's seed, the rank, the worker index), so a
run is reproducible for a given worker count, and the walks and history canvases are shared with
the workers by fork (read only, never copied or pickled).
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch

from engine.train.encoded_walks import Walk
from engine.train.history import HistoryCanvas
from engine.train.world_data import PrevGeometry, WalkSampler

# A plain batch (x0, cond) or a chain of consecutive links (x0, cond, geometry), oldest first.
Batch = tuple[torch.Tensor, torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor, PrevGeometry]]



def default_workers(device: torch.device) -> int:
    """Batch workers when --workers is not given: none on a CPU (the step itself needs the
    cores), the machine's cores less two (the training loop and the GPU feeder), at most 12,
    on CUDA."""
    if device.type != "cuda":
        return 0
    return max(1, min(12, (os.cpu_count() or 2) - 2))


class _SamplerStream(torch.utils.data.IterableDataset):
    """An endless stream of batches (plain, or chains with `self_rollout`); each worker process makes
    its own sampler."""

    def __init__(self, walks: list[Walk], history: list[HistoryCanvas] | None, batch: int, seed: int,
                 sampler_kwargs: dict, self_rollout: int = 0) -> None:
        super().__init__()
        self.walks, self.history, self.batch, self.seed, self.kwargs = walks, history, batch, seed, sampler_kwargs
        self.self_rollout = self_rollout

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        # One thread per worker: N workers already fill N cores, and torch's intra-op pool in
        # every worker would oversubscribe the machine.
        torch.set_num_threads(1)
        seq = np.random.SeedSequence([self.seed, wid])
        rng = np.random.default_rng(seq)
        # The sampler's noise (context, memory features) comes from torch's generator, which the
        # DataLoader seeds from the parent's state: seed it from the run's seed instead.
        torch.manual_seed(int(seq.generate_state(1)[0]))
        sampler = WalkSampler(self.walks, rng=rng, history=self.history, **self.kwargs)
        while True:
            yield sampler.draw(self.batch, self.self_rollout, "cpu")


class WorkerBatches:
    """Batches from `workers` processes, moved to `device` (pinned, non-blocking on CUDA): (x0, cond),
    or with `self_rollout` > 0 sometimes a chain of (x0, cond, PrevGeometry) links."""

    def __init__(self, walks: list[Walk], history: list[HistoryCanvas] | None, batch: int, seed: int,
                 workers: int, device: torch.device, self_rollout: int = 0, **sampler_kwargs) -> None:
        if workers < 1:
            raise ValueError(f"WorkerBatches needs at least one worker, got {workers}")
        self.device = torch.device(device)
        stream = _SamplerStream(walks, history, batch, seed, sampler_kwargs, self_rollout)
        pin = self.device.type == "cuda"
        self._loader = torch.utils.data.DataLoader(
            stream, batch_size=None, num_workers=workers, pin_memory=pin, prefetch_factor=4,
            persistent_workers=True, multiprocessing_context="fork")
        self._it = iter(self._loader)

    def next(self) -> Batch:
        item = next(self._it)   # the loader's conversion turns tuples into lists: tell them apart by content
        if not torch.is_tensor(item[0]):   # a chain; PrevGeometry moves its tensors where they are used
            return [(x0.to(self.device, non_blocking=True), cond.to(self.device, non_blocking=True), geo)
                    for x0, cond, geo in item]
        x0, cond = item
        return x0.to(self.device, non_blocking=True), cond.to(self.device, non_blocking=True)

    def close(self) -> None:
        # Ends the worker processes now rather than at interpreter exit.
        self._it = None
        self._loader = None
