"""The poses a walk actually took: as `mirage-trajectory/1` JSON and as CSV.

Both are written atomically (a temporary file in the same folder, then a rename), so
a reader never sees half a file. The JSON goes through engine.trajectory's own writer,
which validates it first; the CSV writes floats with `repr`, which Python reads back to
the same bits, so both files round-trip exactly.

CSV columns: index, x, y, z, yaw, pitch, observed (1 for a real observation, 0 for a
generated frame).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Sequence

from engine.camera import Pose
from engine.trajectory import Trajectory, write_trajectory
from export.files import atomic_text

__all__ = ["CSV_COLUMNS", "read_walk_csv", "walked_trajectory", "write_walk_csv", "write_walked_trajectory"]

CSV_COLUMNS = ("index", "x", "y", "z", "yaw", "pitch", "observed")


def walked_trajectory(source: Trajectory, poses: Sequence[Pose], observed: Sequence[bool]) -> Trajectory:
    """A Trajectory for the poses walked along `source` (possibly only its first frames).

    `observed` flags each pose; the observed frames must lead, as the format's `observe`
    count says (0 for a walk whose every frame was generated from the scene layout). Revisit pairs of `source` are kept where both frames were walked.
    """
    poses, observed = list(poses), [bool(v) for v in observed]
    if len(poses) != len(observed):
        raise ValueError(f"{len(poses)} poses but {len(observed)} observed flags")
    if not poses:
        raise ValueError("a walked trajectory needs at least one pose")
    n_obs = sum(observed)
    if observed[:n_obs] != [True] * n_obs:   # none at all is a walk grounded in the scene layout alone
        raise ValueError("observed frames must come first")
    n = len(poses)
    revisits = [(i, j) for i, j in source.revisits if i < n and j < n]
    return Trajectory(source.scene_seed, poses, source.fps, source.fov_deg, tuple(source.resolution), n_obs,
                      revisits, source.kind)


def write_walked_trajectory(traj: Trajectory, path: str | os.PathLike) -> Path:
    """Atomic `mirage-trajectory/1` file (engine.trajectory.write_trajectory)."""
    path = Path(path)
    write_trajectory(traj, path)
    return path


def write_walk_csv(path: str | os.PathLike, poses: Sequence[Pose], observed: Sequence[bool]) -> Path:
    """index, x, y, z, yaw, pitch, observed -- one row per frame, floats exact (repr)."""
    path = Path(path)
    if len(poses) != len(observed):
        raise ValueError(f"{len(poses)} poses but {len(observed)} observed flags")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for i, (p, obs) in enumerate(zip(poses, observed)):
        x, y, z = p.position
        w.writerow([i, repr(float(x)), repr(float(y)), repr(float(z)), repr(p.yaw), repr(p.pitch), int(bool(obs))])
    atomic_text(path, buf.getvalue())
    return path


def read_walk_csv(path: str | os.PathLike) -> tuple[list[Pose], list[bool]]:
    """Poses and observed flags back from write_walk_csv's file."""
    poses, observed = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or tuple(header) != CSV_COLUMNS:
            raise ValueError(f"{path}: expected the header {','.join(CSV_COLUMNS)}, got {header}")
        for n, row in enumerate(rows, start=2):
            try:
                i, x, y, z, yaw, pitch, obs = row
                if int(i) != len(poses):
                    raise ValueError(f"index {i} out of order")
                poses.append(Pose((float(x), float(y), float(z)), float(yaw), float(pitch)))
                observed.append(bool(int(obs)))
            except ValueError as e:
                raise ValueError(f"{path}: line {n}: {e}") from None
    return poses, observed
