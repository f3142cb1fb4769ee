"""The one loop that walks sessions along poses: observe where there is an observation, step elsewhere.

Everything that drives WorldSession walks it the same way -- eval, `mirage walk`, the
decoder's training pairs, the benchmarks and the explorer's worker -- so it is written
once. Several sessions (memory on and off, or one per backend) advance in lockstep on the
same pose, each with its own memory and noise seed; the caller supplies the observations
(rendered ground truth), never this module, so it cannot leak ground truth into a frame
shown as generated.

    for i, results in rollout([("memory on", on), ("memory off", off)], traj.frames, traj.observe,
                              lambda i: (gt[i], depth[i])):
        ...   # results: [(label, StepResult), ...] in the sessions' order
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from engine.camera import Pose
from engine.session import StepResult, WorldSession

Observation = tuple[np.ndarray, np.ndarray]   # rgb uint8 (H, W, 3), depth float32 (H, W) metres
Labelled = Sequence[tuple[str, WorldSession]]


def advance(sessions: Labelled, pose: Pose, observation: Observation | None = None,
            sync: Callable[[], None] | None = None) -> list[tuple[str, StepResult]]:
    """One frame of every session at `pose`: an observation when one is given, else a generated frame.

    Each result's timings gain "wall": milliseconds the caller waited for that session's frame,
    after `sync` (e.g. torch.cuda.synchronize, so asynchronous GPU work is counted)."""
    out = []
    for label, session in sessions:
        t0 = time.perf_counter()
        res = session.step(pose) if observation is None else session.observe(observation[0], pose, observation[1])
        if sync is not None:
            sync()
        res.timings["wall"] = 1e3 * (time.perf_counter() - t0)
        out.append((label, res))
    return out


def rollout(sessions: Labelled, poses: Sequence[Pose], observe: int, observations: Callable[[int], Observation],
            sync: Callable[[], None] | None = None) -> Iterator[tuple[int, list[tuple[str, StepResult]]]]:
    """Walk every session along `poses`: frames below `observe` are observed (`observations(i)` gives
    frame i's rgb and depth), the rest generated. Yields (frame index, [(label, StepResult), ...])."""
    if observe < 0:
        raise ValueError(f"observe must be 0 or more, got {observe}")
    for i, pose in enumerate(poses):
        yield i, advance(sessions, pose, observations(i) if i < observe else None, sync)
