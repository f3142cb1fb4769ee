"""export/: poses out of a walk (trajectory JSON, CSV) and training datasets (transforms.json, depth).

Every file is written, read back and compared; foreign transforms.json files are imported or refused
with the frame and field named. Clips, the composer and GIFs are tested in test_export.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.camera import Intrinsics, from_nerfstudio
from engine.trajectory import Trajectory, make_trajectory, read_trajectory
from export.dataset import DatasetWriter, read_depth, read_transforms
from export.trajectory_out import (
    read_walk_csv,
    walked_trajectory,
    write_walk_csv,
    write_walked_trajectory,
)

# --------------------------------------------------------------------------- poses out

@pytest.fixture(scope="module")
def walk_traj() -> Trajectory:
    return make_trajectory(1_000_123, "retrace", fps=15, resolution=(64, 64))


def test_walked_trajectory_round_trips_exactly(tmp_path, walk_traj):
    n = len(walk_traj)
    observed = [i < walk_traj.observe for i in range(n)]
    walked = walked_trajectory(walk_traj, walk_traj.frames, observed)
    path = write_walked_trajectory(walked, tmp_path / "walk.trajectory.json")
    back = read_trajectory(path)
    assert back.frames == walk_traj.frames  # Pose equality: every float identical
    assert (back.observe, back.revisits, back.scene_seed, back.fps, back.kind) == \
        (walk_traj.observe, walk_traj.revisits, walk_traj.scene_seed, walk_traj.fps, walk_traj.kind)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.trajectory.json"]  # no temp file left

    csv_path = write_walk_csv(tmp_path / "walk.csv", walk_traj.frames, observed)
    poses, obs = read_walk_csv(csv_path)
    assert poses == walk_traj.frames and obs == observed
    assert csv_path.read_text().splitlines()[0] == "index,x,y,z,yaw,pitch,observed"


def test_walked_trajectory_keeps_revisits_of_a_prefix(walk_traj):
    k = walk_traj.observe + 3
    part = walked_trajectory(walk_traj, walk_traj.frames[:k], [i < walk_traj.observe for i in range(k)])
    assert all(i < k and j < k for i, j in part.revisits)
    with pytest.raises(ValueError, match="come first"):
        walked_trajectory(walk_traj, walk_traj.frames[:3], [True, False, True])


# --------------------------------------------------------------------------- dataset

@pytest.mark.parametrize("depth_format", ["npy", "png16"])
def test_transforms_json_matrices_are_rotations_and_round_trip(tmp_path, walk_traj, depth_format):
    rng = np.random.default_rng(0)
    frames = walk_traj.frames[:9] + [walk_traj.frames[1]]  # frame 9 revisits frame 1
    out = tmp_path / "ds"
    meta = {"scene_seed": walk_traj.scene_seed, "fps": walk_traj.fps, "observe": 4, "kind": walk_traj.kind,
            "revisits": [[1, 9]]}
    depths = []
    with DatasetWriter(out, Intrinsics(64, 64, 70.0), depth_format, meta) as ds:
        for p in frames:
            depths.append(rng.uniform(0.2, 9.0, (64, 64)).astype(np.float32))
            ds.add(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), p, depths[-1])
    data = json.loads((out / "transforms.json").read_text())
    assert (data["w"], data["h"], data["camera_model"]) == (64, 64, "OPENCV")
    for fr in data["frames"]:
        m = np.asarray(fr["transform_matrix"])
        r = m[:3, :3]
        assert m.shape == (4, 4) and np.allclose(m[3], [0, 0, 0, 1])
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.linalg.det(r) == pytest.approx(1.0)
        assert (out / fr["file_path"]).is_file() and (out / fr["depth_file_path"]).is_file()
    poses, intr = from_nerfstudio(data)
    assert intr == Intrinsics(64, 64, 70.0)
    for a, b in zip(poses, frames):
        assert np.allclose(a.c2w(), b.c2w(), atol=1e-12)
    for k, fr in enumerate(data["frames"]):
        tol = 0 if depth_format == "npy" else 5.01e-4  # half a millimetre, plus float32 rounding
        assert np.abs(read_depth(out / fr["depth_file_path"]) - depths[k]).max() <= tol
    traj = read_transforms(out)
    assert (traj.scene_seed, traj.fps, traj.observe, traj.revisits, traj.kind, traj.resolution) == \
        (walk_traj.scene_seed, walk_traj.fps, 4, [(1, 9)], walk_traj.kind, (64, 64))
    assert all(np.allclose(a.c2w(), b.c2w(), atol=1e-12) for a, b in zip(traj.frames, frames))


def test_dataset_refuses_to_mix_into_a_full_folder(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="--overwrite"):
        DatasetWriter(tmp_path / "ds", Intrinsics(8, 8, 70.0))


def test_import_of_foreign_transforms(tmp_path, walk_traj):
    from engine.camera import to_nerfstudio

    data = to_nerfstudio(walk_traj.frames[:5], Intrinsics(64, 64, 70.0), [f"{i}.png" for i in range(5)])
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no scene seed"):
        read_transforms(tmp_path)
    traj = read_transforms(tmp_path, scene_seed=walk_traj.scene_seed)
    assert len(traj) == 5 and traj.observe == 1
    rolled = np.asarray(data["frames"][2]["transform_matrix"])
    c, s = np.cos(0.3), np.sin(0.3)
    rolled[:3, :3] = rolled[:3, :3] @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    data["frames"][2]["transform_matrix"] = rolled.tolist()
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"frames\[2\].*roll"):
        read_transforms(tmp_path, scene_seed=1)


def test_imported_cameras_that_would_walk_turned_around_are_refused(tmp_path, walk_traj):
    """Upside-down (roll 180) and OpenCV-convention cameras have a horizontal x axis too, so the
    roll check alone let them through and they were walked turned by 180 degrees."""
    from engine.camera import to_nerfstudio

    good = to_nerfstudio(walk_traj.frames[:4], Intrinsics(64, 64, 70.0), [f"{i}.png" for i in range(4)])
    flips = {"roll 180": np.diag([-1.0, -1.0, 1.0]), "OpenCV axes": np.diag([1.0, -1.0, -1.0])}
    for name, flip in flips.items():
        data = json.loads(json.dumps(good))
        m = np.asarray(data["frames"][1]["transform_matrix"])
        m[:3, :3] = m[:3, :3] @ flip
        data["frames"][1]["transform_matrix"] = m.tolist()
        (tmp_path / "transforms.json").write_text(json.dumps(data))
        with pytest.raises(ValueError, match=r"frames\[1\].*upside down"):
            read_transforms(tmp_path, scene_seed=1)
    steep = json.loads(json.dumps(good))   # 89 degrees down used to be clamped to 85 without a word
    from engine.camera import Pose

    steep["frames"][0]["transform_matrix"] = Pose((0.0, 1.6, 0.0), 0.0, 0.0).c2w().tolist()
    m = np.asarray(steep["frames"][0]["transform_matrix"])
    a = np.radians(-89.0)
    m[:3, :3] = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    steep["frames"][0]["transform_matrix"] = m.tolist()
    (tmp_path / "transforms.json").write_text(json.dumps(steep))
    with pytest.raises(ValueError, match=r"frames\[0\].*89.0 degrees down"):
        read_transforms(tmp_path, scene_seed=1)


@pytest.mark.parametrize("change,words", [
    (lambda d: d.update(fl_y=0), "fl_y must be a positive focal length"),
    (lambda d: d.update(w=None), "w must be a whole number"),
    (lambda d: d.update(frames="abc"), "frames must be a list"),
    (lambda d: d["frames"][0].update(transform_matrix=[[None] * 4] * 4), r"frames\[0\]\.transform_matrix"),
    (lambda d: d.update(mirage={"scene_seed": [7]}), "scene.seed"),
    (lambda d: d.update(mirage={"scene_seed": 7.9}), "scene.seed"),
    (lambda d: d.update(mirage={"scene_seed": 7, "revisits": [5]}), r"revisits\[0\]"),
])
def test_malformed_transforms_fields_are_named(tmp_path, walk_traj, change, words):
    from engine.camera import to_nerfstudio

    data = to_nerfstudio(walk_traj.frames[:4], Intrinsics(64, 64, 70.0), [f"{i}.png" for i in range(4)])
    change(data)
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=words):
        read_transforms(tmp_path)
