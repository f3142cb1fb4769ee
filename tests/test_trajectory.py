"""Trajectory kinds on real levels, and the `mirage-trajectory/1` reader and writer."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from engine.camera import Pose, angle_diff, wrap_degrees
from engine.trajectory import (
    FORMAT,
    KINDS,
    Trajectory,
    TrajectoryError,
    make_trajectory,
    read_trajectory,
    trajectory_from_dict,
    trajectory_to_dict,
    write_trajectory,
)
from engine.world.collision import collision_map_for_seed
from engine.world.geometry import BODY_RADIUS, EYE_HEIGHT, FURNITURE
from engine.world.levels import generate_level

SEEDS = list(range(0, 2_000_000, 100_000))  # 20 scenes: training and evaluation ranges alike
FPS = 15


@pytest.fixture(scope="module", params=SEEDS)
def seed(request) -> int:
    return request.param


@pytest.fixture(scope="module")
def trajectories(seed) -> dict[str, Trajectory]:
    return {kind: make_trajectory(seed, kind) for kind in KINDS}


def _check_common(traj: Trajectory, kind: str) -> None:
    """What every kind promises: free poses, a person's speed and turn rate, exact revisits."""
    cmap = collision_map_for_seed(traj.scene_seed)
    xyz = np.array([p.position for p in traj.frames])
    assert traj.kind == kind and traj.fps == FPS and 1 <= traj.observe < len(traj)
    assert (xyz[:, 1] == EYE_HEIGHT).all()
    assert (cmap.clearance(xyz[:, 0], xyz[:, 2]) >= BODY_RADIUS).all(), "a pose touches a wall or furniture"
    steps = np.hypot(np.diff(xyz[:, 0]), np.diff(xyz[:, 2]))
    assert steps.max() <= 1.4 / FPS + 1e-9
    yaws = [p.yaw for p in traj.frames]
    pitches = np.array([p.pitch for p in traj.frames])
    assert max(angle_diff(a, b) for a, b in zip(yaws, yaws[1:])) <= 90.0 / FPS + 1e-6
    assert np.abs(np.diff(pitches)).max(initial=0.0) <= 90.0 / FPS + 1e-6
    assert all(-180.0 <= y < 180.0 for y in yaws)
    assert traj.revisits
    for i, j in traj.revisits:
        assert i < j and traj.frames[i] == traj.frames[j], f"revisit ({i}, {j}) is not at the same pose"
    trajectory_from_dict(trajectory_to_dict(traj), check_scene=True)  # the reader agrees


def _path_length(poses: list[Pose]) -> float:
    xyz = np.array([p.position for p in poses])
    return float(np.hypot(np.diff(xyz[:, 0]), np.diff(xyz[:, 2])).sum())


def _signed_turn(poses: list[Pose]) -> float:
    return sum(wrap_degrees(b.yaw - a.yaw) for a, b in zip(poses, poses[1:]))


def test_turnaround(trajectories) -> None:
    t = trajectories["turnaround"]
    _check_common(t, "turnaround")
    n = math.ceil(360 / (90 / FPS))
    assert len(t) == 1 + 2 * n and t.observe == 1
    assert len({p.position for p in t.frames}) == 1 and all(p.pitch == 0 for p in t.frames)
    assert abs(_signed_turn(t.frames)) == pytest.approx(720.0)
    pairs = set(t.revisits)
    assert {(0, n), (0, 2 * n)} <= pairs and all((k, n + k) in pairs for k in range(1, n + 1))


def test_retrace(trajectories) -> None:
    t = trajectories["retrace"]
    _check_common(t, "retrace")
    n = t.observe
    assert len(t) == 2 * n - 1
    out = t.frames[:n]
    assert _path_length(out) >= 6.0
    level = generate_level(t.scene_seed)
    (ax, _, az), (bx, _, bz) = out[0].position, out[-1].position
    assert level.room_at(ax, az) >= 0 and level.room_at(bx, bz) >= 0
    assert level.room_at(ax, az) != level.room_at(bx, bz), "A and B must be in different rooms"
    assert t.frames[n:] == out[-2::-1]  # the same poses, back to A, facing the same way
    generated = {j for _, j in t.revisits}
    assert generated == set(range(n, len(t))) and all(i < n for i, _ in t.revisits)
    assert all(p.pitch == 0 for p in t.frames)
    # looking ahead: the view and the walking direction agree on the way out
    xyz = np.array([p.position for p in out])
    heading = np.degrees(np.arctan2(-np.diff(xyz[:, 0]), -np.diff(xyz[:, 2])))
    assert np.median([angle_diff(h, p.yaw) for h, p in zip(heading, out[1:])]) < 10.0


def test_out_and_back(trajectories) -> None:
    t = trajectories["out-and-back"]
    _check_common(t, "out-and-back")
    observed, generated = t.frames[:t.observe], t.frames[t.observe:]
    n_look = math.ceil(360 / (90 / FPS))
    look = observed[-n_look - 1:]
    assert len({p.position for p in look}) == 1, "the look-around turns in place at B"
    assert abs(_signed_turn(look)) == pytest.approx(360.0)
    assert _path_length(observed) >= 6.0
    assert (0, len(t) - 1) in t.revisits and t.frames[-1] == t.frames[0]
    assert _path_length(generated) >= 6.0
    # walking back faces the other way: views from new poses of places seen on the way out
    out = np.array([p.position for p in observed])[:, [0, 2]]
    back = [(k, p) for k, p in enumerate(generated[1:], 1) if p.position != generated[k - 1].position]
    facing = []
    for k, p in back:
        near = int(np.argmin(np.hypot(*(out - np.array([p.position[0], p.position[2]])).T)))
        facing.append(angle_diff(p.yaw, observed[near].yaw) > 120.0)
    assert len(back) > 30 and np.mean(facing) > 0.8


def test_explore(trajectories) -> None:
    t = trajectories["explore"]
    _check_common(t, "explore")
    assert len(t) == 1200 and t.observe == 1
    assert len(t.revisits) >= 3, "explore should come back to earlier places now and then"
    ends = [j for _, j in t.revisits]
    assert ends == sorted(ends) and len(set(ends)) == len(ends)
    assert all(j - i >= 100 for i, j in t.revisits)
    pitches = np.array([p.pitch for p in t.frames])
    assert np.abs(pitches).max() <= 10.0 and np.abs(pitches).max() > 0.0
    level = generate_level(t.scene_seed)
    rooms = {level.room_at(p.position[0], p.position[2]) for p in t.frames} - {-1}
    assert len(rooms) >= 2


def test_deterministic_and_seeded() -> None:
    a = make_trajectory(1_000_123, "explore", frames=300)
    assert a == make_trajectory(1_000_123, "explore", frames=300)
    assert a != make_trajectory(1_000_123, "explore", frames=300, rng_seed=1)
    assert make_trajectory(generate_level(5), "retrace") == make_trajectory(5, "retrace")


def test_other_fps_and_frame_counts() -> None:
    t = make_trajectory(3, "turnaround", fps=30)
    assert len(t) == 1 + 2 * 120 and t.fps == 30.0
    steps = [angle_diff(a.yaw, b.yaw) for a, b in zip(t.frames, t.frames[1:])]
    assert max(steps) <= 3.0 + 1e-9
    assert len(make_trajectory(3, "explore", frames=250, fps=30)) == 250
    assert len(make_trajectory(3, "retrace", frames=301)) >= 301
    assert len(make_trajectory(3, "out-and-back", frames=700)) >= 700
    with pytest.raises(ValueError, match="odd frame count"):
        make_trajectory(3, "turnaround", frames=50)
    with pytest.raises(ValueError, match="unknown trajectory kind"):
        make_trajectory(3, "wander")


# ---- file format -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample() -> Trajectory:
    return make_trajectory(1_000_123, "out-and-back")


def test_round_trip_is_exact(tmp_path: Path, sample: Trajectory) -> None:
    for kind in KINDS:
        t = sample if kind == "out-and-back" else make_trajectory(7, kind, frames=301 if kind == "explore" else None)
        path = tmp_path / f"{kind}.json"
        write_trajectory(t, path)
        back = read_trajectory(path)
        assert back == t and back.kind == kind
        assert all(a.yaw == b.yaw and a.position == b.position for a, b in zip(back.frames, t.frames))
    d = json.loads((tmp_path / "explore.json").read_text())
    assert d["format"] == FORMAT and d["scene"] == {"seed": 7} and d["resolution"] == [128, 128]
    assert list(d)[:7] == ["format", "scene", "fps", "fov_deg", "resolution", "observe", "frames"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "temp file left behind"


def test_extra_keys_are_tolerated_and_kind_is_optional(tmp_path: Path, sample: Trajectory) -> None:
    d = trajectory_to_dict(sample)
    d["note"] = "recorded by hand"
    d["frames"][0]["exposure"] = 1.0
    del d["kind"]
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(d))
    t = read_trajectory(path)
    assert t.kind is None and t.frames == sample.frames


def test_writer_refuses_bad_trajectories_and_keeps_the_old_file(tmp_path: Path, sample: Trajectory) -> None:
    path = tmp_path / "t.json"
    write_trajectory(sample, path)
    before = path.read_text()
    bad = Trajectory(sample.scene_seed, sample.frames[:-1] + [Pose((0.0, 1.6, float("nan")), 0.0)],
                     observe=sample.observe, revisits=[])
    with pytest.raises(TrajectoryError, match=r"frames\[\d+\]\.position\[2\]"):
        write_trajectory(bad, path)
    assert path.read_text() == before and os.listdir(tmp_path) == ["t.json"]


def _wall_point(seed: int) -> list[float]:
    room = generate_level(seed).rooms[0]
    return [room.lo[0] - 0.1, EYE_HEIGHT, 0.5 * (room.lo[1] + room.hi[1])]  # inside the wall


def _furniture_point(seed: int) -> list[float]:
    box = next(b for b in generate_level(seed).static_boxes if b.solid and b.material == FURNITURE)
    return [0.5 * (box.lo[0] + box.hi[0]), EYE_HEIGHT, 0.5 * (box.lo[2] + box.hi[2])]


def _set(d: dict, dotted: str, value) -> dict:
    *head, last = dotted.split(".")
    node = d
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return d


_DELETE = object()

# (case, edit of the valid dict, words the message must contain: field and value)
MALFORMED = [
    ("unknown format", ("format", "mirage-trajectory/2"), ["format", '"mirage-trajectory/2"']),
    ("missing format", ("format", _DELETE), ["missing key 'format'"]),
    ("NaN yaw", ("frames.12.yaw", float("nan")), ["frames[12].yaw", "NaN"]),
    ("infinite position", ("frames.3.position.1", float("inf")), ["frames[3].position[1]", "Infinity"]),
    ("string yaw", ("frames.5.yaw", "90"), ["frames[5].yaw", '"90"']),
    ("bool pitch", ("frames.2.pitch", True), ["frames[2].pitch", "true"]),
    ("bool fps", ("fps", False), ["fps", "false"]),
    ("float seed", ("scene.seed", 7.5), ["scene.seed", "7.5"]),
    ("missing pitch", ("frames.4.pitch", _DELETE), ["frames[4]", "missing key 'pitch'"]),
    ("missing revisits", ("revisits", _DELETE), ["missing key 'revisits'"]),
    ("observe negative", ("observe", -1), ["observe", "-1"]),
    ("observe past the end", ("observe", 10_000), ["observe", "10000"]),
    ("pitch out of range", ("frames.1.pitch", 120.0), ["frames[1].pitch", "120.0"]),
    ("short position", ("frames.0.position", [1.0, 2.0]), ["frames[0].position", "[1.0, 2.0]"]),
    ("resolution", ("resolution", [128]), ["resolution", "[128]"]),
    ("revisit out of range", ("revisits.0", [0, 99_999]), ["revisits[0][1]", "99999"]),
    ("revisit negative", ("revisits.0", [-1, 3]), ["revisits[0][0]", "-1"]),
    ("revisit mismatch", ("revisits.0", [0, 40]), ["revisits[0]", "[0, 40]", "frames[40]"]),
    ("pose in a wall", ("frames.7.position", "WALL"), ["frames[7].position", "inside a wall"]),
    ("pose in furniture", ("frames.9.position", "FURNITURE"), ["frames[9].position", "inside a wall or furniture"]),
]


@pytest.mark.parametrize("case,edit,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_refused(tmp_path: Path, sample: Trajectory, case, edit, words) -> None:
    d = trajectory_to_dict(sample)
    field, value = edit
    if value in ("WALL", "FURNITURE"):
        value = _wall_point(sample.scene_seed) if value == "WALL" else _furniture_point(sample.scene_seed)
        words = words + [json.dumps(value)]
    _set(d, field, value)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d, indent=1))  # allow_nan: Python writes NaN and Infinity tokens
    with pytest.raises(TrajectoryError) as err:
        read_trajectory(path)
    msg = str(err.value)
    assert str(path) in msg
    for w in words:
        assert w in msg, f"{case}: {w!r} not in {msg!r}"


def test_bad_json_names_line_and_column(tmp_path: Path, sample: Trajectory) -> None:
    path = tmp_path / "broken.json"
    text = json.dumps(trajectory_to_dict(sample), indent=1)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(TrajectoryError, match=rf"{path.name}: not valid JSON at line \d+ column \d+"):
        read_trajectory(path)
    path.write_text("[1, 2]")
    with pytest.raises(TrajectoryError, match="must be a JSON object"):
        read_trajectory(path)
    with pytest.raises(TrajectoryError, match="cannot read"):
        read_trajectory(tmp_path / "missing.json")


def test_scene_check_can_be_skipped(tmp_path: Path, sample: Trajectory) -> None:
    d = _set(trajectory_to_dict(sample), "frames.7.position", _wall_point(sample.scene_seed))
    path = tmp_path / "wall.json"
    path.write_text(json.dumps(d))
    assert read_trajectory(path, check_scene=False).frames[7].position[0] == d["frames"][7]["position"][0]
    with pytest.raises(TrajectoryError, match=r"<dict>: frames\[7\]\.position"):
        trajectory_from_dict(d, check_scene=True)
