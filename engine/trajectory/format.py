"""Trajectory files (`mirage-trajectory/1`): the dataclass, a strict reader and an atomic writer.

A trajectory is the camera path one evaluation or recording follows: the leading
`observe` frames are real observations, the rest are generated, and `revisits` pairs
frames at the same pose. The reader refuses anything it cannot trust, naming the file,
the JSON path of the field (`frames[12].yaw`) and the offending value, because a silently
clamped or skipped pose would corrupt every metric computed on it.

The builders of the four trajectory kinds live in engine/trajectory/kinds.py; the
package (`engine.trajectory`) exports both.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.camera import MAX_SIDE, PITCH_LIMIT_DEG, Intrinsics, Pose, angle_diff
from engine.files import atomic_text
from engine.world.geometry import DOOR_H, MAX_SCENE_SEED

__all__ = ["FORMAT", "KINDS", "MIN_CLEARANCE", "Trajectory", "TrajectoryError", "read_trajectory",
           "trajectory_from_dict", "trajectory_to_dict", "write_trajectory"]

FORMAT = "mirage-trajectory/1"
KINDS = ("turnaround", "retrace", "out-and-back", "explore")
REVISIT_POS_TOL = 1e-3      # metres
REVISIT_ANGLE_TOL = 0.01    # degrees
MIN_CLEARANCE = 0.05        # metres a pose must keep from walls and furniture
# Camera heights a walk may have, metres: every level's floor is at 0 and its lowest ceiling (doorways,
# corridors) at DOOR_H; a camera above the roof or under the floor sees nothing but black.
EYE_RANGE = (0.2, DOOR_H - 0.05)
MAX_FRAMES = 100_000        # 1.9 hours at 15 fps: more than any walk needs, less than fills the memory
MAX_FILE_BYTES = 32 << 20   # about 200 bytes a frame at MAX_FRAMES, with room to spare


class TrajectoryError(ValueError):
    """A trajectory file or dict that cannot be used; the message says where and why."""


@dataclass
class Trajectory:
    scene_seed: int
    frames: list[Pose]
    fps: float = 15.0
    fov_deg: float = 70.0
    resolution: tuple[int, int] = (128, 128)  # (width, height)
    observe: int = 1
    revisits: list[tuple[int, int]] = field(default_factory=list)
    kind: str | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def intrinsics(self) -> Intrinsics:
        return Intrinsics(self.resolution[0], self.resolution[1], self.fov_deg)

    @property
    def observed(self) -> list[Pose]:
        return self.frames[:self.observe]

    @property
    def generated(self) -> list[Pose]:
        return self.frames[self.observe:]


def _show(value: Any) -> str:
    """The value as it reads in JSON (NaN, Infinity, true), shortened."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _pose_text(p: Pose) -> str:
    x, y, z = p.position
    return f"({x:.4f}, {y:.4f}, {z:.4f}) yaw {p.yaw:.4f} pitch {p.pitch:.4f}"


class _Checker:
    """Type checks that raise TrajectoryError naming source, JSON path and value."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str, value: Any = None, show: bool = True) -> TrajectoryError:
        tail = f", got {_show(value)}" if show else ""
        return TrajectoryError(f"{self.source}: {where} {problem}{tail}")

    def key(self, obj: dict, name: str, where: str) -> Any:
        if name not in obj:
            raise self.fail(where or "top level", f"is missing key {name!r}", show=False)
        return obj[name]

    def obj(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(where or "top level", "must be a JSON object", value)
        return value

    def number(self, value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        # bool is an int subclass in Python, but `true` is not a number in a pose
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, "must be a number", value)
        if not math.isfinite(value):
            raise self.fail(where, "must be a finite number", value)
        if not lo <= value <= hi:
            raise self.fail(where, f"must be in [{lo:g}, {hi:g}]", value)
        return float(value)

    def integer(self, value: Any, where: str, lo: int, hi: float = math.inf) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, "must be an integer", value)
        if not lo <= value <= hi:
            raise self.fail(where, f"must be in [{lo}, {hi:g}]", value)
        return value

    def array(self, value: Any, where: str, length: int | None = None) -> list:
        if not isinstance(value, list):
            raise self.fail(where, "must be a JSON array", value)
        if length is not None and len(value) != length:
            raise self.fail(where, f"must have {length} items", value)
        return value


def trajectory_from_dict(d: Any, source: str = "<dict>", check_scene: bool = False) -> Trajectory:
    """Validate a parsed `mirage-trajectory/1` document and build the Trajectory.

    With check_scene, every pose must also stand in free space of the scene's level.
    """
    ck = _Checker(source)
    d = ck.obj(d, "")
    fmt = ck.key(d, "format", "")
    if fmt != FORMAT:
        raise ck.fail("format", f"is not a known trajectory format (expected {FORMAT!r})", fmt)
    scene = ck.obj(ck.key(d, "scene", ""), "scene")
    seed = ck.integer(ck.key(scene, "seed", "scene"), "scene.seed", 0, MAX_SCENE_SEED)
    fps = ck.number(ck.key(d, "fps", ""), "fps", 1.0, 1000.0)   # clips below 1 frame/s do not encode
    fov = ck.number(ck.key(d, "fov_deg", ""), "fov_deg", 1.0, 179.0)
    res = ck.array(ck.key(d, "resolution", ""), "resolution", 2)
    resolution = (ck.integer(res[0], "resolution[0]", 8, MAX_SIDE), ck.integer(res[1], "resolution[1]", 8, MAX_SIDE))
    raw_frames = ck.array(ck.key(d, "frames", ""), "frames")
    if len(raw_frames) > MAX_FRAMES:
        raise ck.fail("frames", f"holds {len(raw_frames):,} frames; at most {MAX_FRAMES:,} are accepted",
                      f"[{len(raw_frames)} items]")
    if not raw_frames:
        raise ck.fail("frames", "must hold at least one frame", raw_frames)
    frames = []
    for i, fr in enumerate(raw_frames):
        at = f"frames[{i}]"
        fr = ck.obj(fr, at)
        pos = ck.array(ck.key(fr, "position", at), f"{at}.position", 3)
        xyz = tuple(ck.number(v, f"{at}.position[{k}]", *(EYE_RANGE if k == 1 else (-math.inf, math.inf)))
                    for k, v in enumerate(pos))
        yaw = ck.number(ck.key(fr, "yaw", at), f"{at}.yaw")
        pitch = ck.number(ck.key(fr, "pitch", at), f"{at}.pitch", -PITCH_LIMIT_DEG, PITCH_LIMIT_DEG)
        frames.append(Pose(xyz, yaw, pitch))
    n = len(frames)
    # 0: nothing observed, every frame generated (needs a model and session with the scene layout on).
    observe = ck.integer(ck.key(d, "observe", ""), "observe", 0, n)
    revisits = []
    for k, pair in enumerate(ck.array(ck.key(d, "revisits", ""), "revisits")):
        at = f"revisits[{k}]"
        pair = ck.array(pair, at, 2)
        i, j = ck.integer(pair[0], f"{at}[0]", 0, n - 1), ck.integer(pair[1], f"{at}[1]", 0, n - 1)
        if i == j:
            raise ck.fail(at, "must pair two different frames", pair)
        a, b = frames[i], frames[j]
        gap = max(abs(u - v) for u, v in zip(a.position, b.position))
        turn = max(angle_diff(a.yaw, b.yaw), abs(a.pitch - b.pitch))
        if gap > REVISIT_POS_TOL or turn > REVISIT_ANGLE_TOL:
            raise ck.fail(at, f"pairs frames whose poses differ by {gap:.4g} m and {turn:.4g} deg "
                              f"(allowed {REVISIT_POS_TOL} m, {REVISIT_ANGLE_TOL} deg): "
                              f"frames[{i}] is {_pose_text(a)}, frames[{j}] is {_pose_text(b)}", pair)
        revisits.append((i, j))
    kind = d.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise ck.fail("kind", "must be a string", kind)
    traj = Trajectory(seed, frames, fps, fov, resolution, observe, revisits, kind)
    if check_scene:
        _check_scene(traj, ck)
    return traj


def _check_scene(traj: Trajectory, ck: _Checker) -> None:
    import numpy as np

    from engine.world.collision import collision_map_for_seed

    cmap = collision_map_for_seed(traj.scene_seed)
    xyz = np.array([p.position for p in traj.frames])
    clear = cmap.clearance(xyz[:, 0], xyz[:, 2])
    bad = np.flatnonzero(clear < MIN_CLEARANCE)
    if len(bad):
        i = int(bad[0])
        raise ck.fail(f"frames[{i}].position", f"is inside a wall or furniture of scene {traj.scene_seed} "
                      f"(clearance {clear[i]:.3f} m, poses need {MIN_CLEARANCE} m; "
                      f"{len(bad)} pose(s) affected)", list(traj.frames[i].position))


def _plain(v: float) -> float | int:
    """15 rather than 15.0, as the format's documentation writes it; reads back equal."""
    return int(v) if isinstance(v, (int, float)) and math.isfinite(v) and float(v).is_integer() else v


def trajectory_to_dict(traj: Trajectory) -> dict:
    d = {
        "format": FORMAT,
        "scene": {"seed": int(traj.scene_seed)},
        "fps": _plain(traj.fps),
        "fov_deg": _plain(traj.fov_deg),
        "resolution": [int(traj.resolution[0]), int(traj.resolution[1])],
        "observe": int(traj.observe),
        "frames": [{"position": [float(v) for v in p.position], "yaw": p.yaw, "pitch": p.pitch}
                   for p in traj.frames],
        "revisits": [[int(i), int(j)] for i, j in traj.revisits],
    }
    if traj.kind is not None:
        d["kind"] = traj.kind
    return d


def _dumps(d: dict) -> str:
    """Readable JSON that stays short: one line per frame and per revisit line of pairs."""
    lines = ["{"]
    items = list(d.items())
    for n, (key, value) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        if key == "frames":
            body = ",\n".join("    " + json.dumps(f, allow_nan=False) for f in value)
            lines.append(f'  "frames": [\n{body}\n  ]{comma}')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, allow_nan=False)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_trajectory(traj: Trajectory, path: str | os.PathLike) -> None:
    """Write atomically (engine/files.py). The dict is validated first, so a file this writes is
    one the reader accepts."""
    path = Path(path)
    d = trajectory_to_dict(traj)
    trajectory_from_dict(d, source=f"{path} (being written)")
    atomic_text(path, _dumps(d))


def read_trajectory(path: str | os.PathLike, check_scene: bool = True) -> Trajectory:
    """Read and validate a trajectory file; TrajectoryError says what is wrong and where."""
    try:
        with open(path, "rb") as f:   # read at most the cap: /dev/zero or a huge file must not eat the memory
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise TrajectoryError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB, more than any trajectory of "
                                  f"{MAX_FRAMES:,} frames needs; not read")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TrajectoryError(f"{path}: cannot read trajectory file: {e}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise TrajectoryError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise TrajectoryError(f"{path}: nested too deeply to be a trajectory") from None
    return trajectory_from_dict(d, source=str(path), check_scene=check_scene)

