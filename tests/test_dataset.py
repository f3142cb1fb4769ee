"""Training data: walk poses, shards on disk, and the on-the-fly source."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.camera import Pose, angle_diff
from engine.train import data as D
from engine.train import walks as W


def test_parse_seed_range():
    assert D.parse_seed_range("3:7") == range(3, 7)
    assert D.parse_seed_range("5") == range(5, 6)
    for bad in ("7:3", "a:b", "1:1"):
        with pytest.raises(ValueError):
            D.parse_seed_range(bad)


def test_eval_seeds_refused_with_reason():
    assert list(D.check_training_seeds(range(0, 4))) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="evaluation"):
        D.check_training_seeds(range(0, 2_000_000))  # the overlap is in the middle
    with pytest.raises(ValueError, match="evaluation range 1000000..1000999"):
        D.check_training_seeds([5, 1_000_500])
    assert D.check_training_seeds([1_000_500], allow_eval_seeds=True) == [1_000_500]
    assert D.check_training_seeds([1_001_000]) == [1_001_000]  # past the eval range is not held out


def test_write_shards_refuses_eval_seeds_before_writing(tmp_path):
    with pytest.raises(ValueError, match="evaluation"):
        D.write_shards([1, 1_000_001], 4, tmp_path / "ds", resolution=(32, 32), progress=False)
    assert not (tmp_path / "ds").exists()
    with pytest.raises(ValueError, match="evaluation"):
        D.OnTheFlySource(range(999_990, 1_000_010))
    with pytest.raises(ValueError, match="evaluation"):
        D.OnTheFlySource((0, 2_000_000))


def test_walk_poses_are_continuous_free_and_revisit(level):
    from engine.world.collision import CollisionMap

    poses = W.sample_walk_poses(level, 400, np.random.default_rng(1))
    assert len(poses) == 400 and all(isinstance(p, Pose) for p in poses)
    again = W.sample_walk_poses(level, 400, np.random.default_rng(1))
    assert poses == again  # deterministic for a given rng
    xyz = np.array([p.position for p in poses])
    assert np.allclose(xyz[:, 1], level.eye_height)
    steps = np.linalg.norm(np.diff(xyz[:, [0, 2]], axis=0), axis=1)
    assert steps.max() <= W.STEP_RANGE[1] + 1e-6, "a walk never jumps"
    yaw_steps = [angle_diff(a.yaw, b.yaw) for a, b in zip(poses, poses[1:])]
    assert max(yaw_steps) <= W.TURN_RANGE[1] + 1e-6
    assert max(abs(p.pitch) for p in poses) <= W.PITCH_LIMIT + 1e-6
    cmap = CollisionMap(level)
    free = np.mean([cmap.is_free(p.position[0], p.position[2]) for p in poses])
    assert free >= 0.98, f"only {free:.0%} of poses in free space"
    # Revisits: a later frame (>= 30 frames on) is back near an earlier pose, looking the same way.
    yaw = np.array([p.yaw for p in poses])
    near = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1) < 0.3
    same_way = np.abs((yaw[:, None] - yaw[None] + 180.0) % 360.0 - 180.0) < 15.0
    later = np.triu(np.ones((400, 400), dtype=bool), k=30)
    revisit = bool((near & same_way & later).any())
    assert revisit, "training walks should come back to places they have seen"


def test_shards_round_trip_exactly(tmp_path, egl):
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    seeds = [11, 12]
    out = tmp_path / "ds"
    manifest = D.write_shards(seeds, 8, out, resolution=(64, 64), fov=70.0, shard_size=8, progress=False)
    assert manifest["frames"] == 16 and len(manifest["shards"]) == 2  # shard_size 8: one scene a shard
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries

    # Re-render the same walks independently: the files hold exactly those arrays.
    r = Renderer(generate_level(seeds[0]), 64, 64, 70.0)
    try:
        for shard, seed in zip(manifest["shards"], seeds):
            got = D.read_shard(out / shard["file"])
            want = D.render_walk(r, generate_level(seed), 8, np.random.default_rng([0, seed]), np.float16)
            assert set(got) == set(D.SHARD_KEYS)
            for k in D.SHARD_KEYS:
                assert got[k].dtype == want[k].dtype, k
                np.testing.assert_array_equal(got[k], want[k], err_msg=k)
            assert got["rgb"].shape == (8, 64, 64, 3) and got["depth"].shape == (8, 64, 64)
            assert got["pose"].shape == (8, 5) and got["c2w"].shape == (8, 4, 4)
            assert (got["scene_seed"] == seed).all() and list(got["frame_index"]) == list(range(8))
            poses = D.arrays_to_poses(got["pose"])
            np.testing.assert_allclose(np.stack([p.c2w() for p in poses]), got["c2w"], atol=1e-6)
    finally:
        r.close()

    # A generic shard round-trips bit for bit too (float32 depth, uncompressed).
    arrays = dict(want, depth=want["depth"].astype(np.float32))
    D.write_shard(tmp_path / "one.npz", arrays, compress=False)
    back = D.read_shard(tmp_path / "one.npz")
    for k in D.SHARD_KEYS:
        np.testing.assert_array_equal(back[k], arrays[k])

    with pytest.raises(FileExistsError):
        D.write_shards(seeds, 8, out, resolution=(64, 64), progress=False)


def test_shard_dataset_clips(tmp_path, egl):
    out = tmp_path / "ds"
    D.write_shards([3, 4, 5], 8, out, resolution=(32, 32), shard_size=16, progress=False)
    ds = D.ShardDataset(out, clip_len=4)
    assert len(ds) == 3 * 2
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["rgb"].shape == (4, 32, 32, 3) and item["rgb"].dtype == np.uint8
        assert item["depth"].shape == (4, 32, 32) and item["intrinsics"].shape == (3, 3)
        assert len(set(item["scene_seed"].tolist())) == 1, "a clip never mixes scenes"
        assert np.all(np.diff(item["frame_index"]) == 1)
        seen.add(int(item["scene_seed"][0]))
    assert seen == {3, 4, 5}
    overlapping = D.ShardDataset(out, clip_len=4, stride=2)
    assert len(overlapping) == 3 * 3


def test_on_the_fly_clips_match_renderer(egl):
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    with D.OnTheFlySource(range(20, 23), clip_len=6, resolution=(48, 32), frames_per_scene=24,
                          clips_per_scene=2, rng_seed=5, max_clips=4) as src:
        clips = list(src)
    assert len(clips) == 4
    r = None
    try:
        for clip in clips:
            assert clip["rgb"].shape == (6, 32, 48, 3) and clip["rgb"].dtype == np.uint8
            assert clip["depth"].shape == (6, 32, 48) and clip["depth"].dtype == np.float32
            assert clip["pose"].shape == (6, 5) and clip["c2w"].shape == (6, 4, 4)
            seed = int(clip["scene_seed"][0])
            assert 20 <= seed < 23 and (clip["scene_seed"] == seed).all()
            assert np.all(np.diff(clip["frame_index"]) == 1)
            # Consecutive frames of one walk: small steps.
            assert np.linalg.norm(np.diff(clip["pose"][:, [0, 2]], axis=0), axis=1).max() <= W.STEP_RANGE[1] + 1e-6
            level = generate_level(seed)
            if r is None:
                r = Renderer(level, 48, 32, 70.0)
            else:
                r.set_level(level)
            rgb, depth = r.render(D.arrays_to_poses(clip["pose"]))
            # Same poses, drawn into other tiles of the renderer's batch framebuffer: edges and
            # fine patterns rasterise slightly differently there (mean |diff| ~1-2 levels), while a
            # pose one frame off differs by ~10-20 levels on average with a third of pixels changed.
            diff = np.abs(rgb.astype(int) - clip["rgb"].astype(int))
            for k in range(len(diff)):
                assert diff[k].mean() < 4.0 and (diff[k].max(-1) > 8).mean() < 0.1, (k, diff[k].mean())
            assert np.mean(np.abs(depth - clip["depth"]) > 1e-3 * depth) < 0.01
            np.testing.assert_allclose(clip["intrinsics"], r.intrinsics.matrix(), rtol=1e-6)
    finally:
        if r is not None:
            r.close()
