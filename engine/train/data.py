"""Posed training frames: shards on disk and an on-the-fly source, made of the walks of
`engine.train.walks` (continuous camera paths that keep revisiting places).

Shards are `.npz` files (no pickle) holding whole scene walks, plus a
`manifest.json` written last, so a directory with a manifest is complete. Arrays
per shard (N frames):

    rgb          (N, H, W, 3) uint8
    depth        (N, H, W)    float16 or float32, metres along the view axis
    pose         (N, 5)       float64  x, y, z, yaw, pitch (degrees)
    c2w          (N, 4, 4)    float32  camera-to-world, OpenGL axes
    intrinsics   (3, 3)       float32  OpenCV K
    scene_seed   (N,)         int64
    frame_index  (N,)         int32    position in that scene's walk

This module imports only numpy (and the renderer when it renders), so the
`mirage dataset` command starts fast and a torch DataLoader can wrap
`ShardDataset` as a map-style dataset.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from engine.camera import Intrinsics, Pose
from engine.files import atomic_bytes, atomic_path
from engine.train.walks import sample_walk_poses
from engine.world.geometry import EVAL_SEED_RANGE

DATASET_FORMAT = "mirage-dataset/1"
SHARD_KEYS = ("rgb", "depth", "pose", "c2w", "intrinsics", "scene_seed", "frame_index")

RENDER_BATCH = 64


# --------------------------------------------------------------------------- seeds

def check_training_seeds(seeds: Iterable[int], allow_eval_seeds: bool = False) -> Sequence[int]:
    """The seeds (a range stays a range); refuses seeds in EVAL_SEED_RANGE unless allowed."""
    seeds = seeds if isinstance(seeds, range) else [int(s) for s in seeds]
    if len(seeds) == 0:
        raise ValueError("no scene seeds given")
    if min(seeds) < 0:
        raise ValueError(f"scene seeds must be non-negative, got {min(seeds)}")
    lo, hi = EVAL_SEED_RANGE
    if isinstance(seeds, range) and seeds.step == 1:  # cheap for huge ranges
        bad = range(max(seeds.start, lo), min(seeds.stop, hi))
    else:
        bad = [s for s in seeds if lo <= s < hi]
    if len(bad) and not allow_eval_seeds:
        raise ValueError(
            f"{len(bad)} of the seeds ({bad[0]}{'...' if len(bad) > 1 else ''}) fall in the evaluation "
            f"range {lo}..{hi - 1}. Those worlds are held out so that eval measures worlds the model has "
            f"never seen; training on them would leak the test set. Use seeds below {lo} for training, "
            f"or pass allow_eval_seeds (--allow-eval-seeds) to build an evaluation set on purpose.")
    return seeds


def parse_seed_range(text: str) -> range:
    """'A:B' (half-open, like Python) or a single 'A' -> range."""
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            r = range(int(a), int(b))
        else:
            r = range(int(text), int(text) + 1)
    except ValueError:
        raise ValueError(f"seeds must look like A:B (half-open) or A, got {text!r}") from None
    if len(r) == 0:
        raise ValueError(f"seed range {text!r} is empty (A:B means A <= seed < B)")
    return r


def poses_to_arrays(poses: Sequence[Pose]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 5) float64 [x, y, z, yaw, pitch] and (N, 4, 4) float32 camera-to-world."""
    pose = np.array([[*p.position, p.yaw, p.pitch] for p in poses], dtype=np.float64).reshape(-1, 5)
    c2w = np.stack([p.c2w() for p in poses]).astype(np.float32) if poses else np.zeros((0, 4, 4), np.float32)
    return pose, c2w


def arrays_to_poses(pose: np.ndarray) -> list[Pose]:
    return [Pose((float(r[0]), float(r[1]), float(r[2])), float(r[3]), float(r[4])) for r in np.asarray(pose)]


def render_poses(renderer, poses: Sequence[Pose], batch: int = RENDER_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Render in batches (the renderer tiles a batch into one framebuffer read)."""
    rgbs, depths = [], []
    for i in range(0, len(poses), batch):
        rgb, depth = renderer.render(poses[i:i + batch])
        rgbs.append(rgb)
        depths.append(depth)
    return np.concatenate(rgbs), np.concatenate(depths)


def render_walk(renderer, level, n: int, rng, depth_dtype=np.float32) -> dict[str, np.ndarray]:
    """One scene's walk of `n` frames as the shard arrays (the renderer is switched to `level`)."""
    if renderer.level is not level:
        renderer.set_level(level)
    poses = sample_walk_poses(level, n, rng)
    rgb, depth = render_poses(renderer, poses)
    pose, c2w = poses_to_arrays(poses)
    return {
        "rgb": rgb,
        "depth": depth.astype(depth_dtype, copy=False),
        "pose": pose,
        "c2w": c2w,
        "intrinsics": renderer.intrinsics.matrix().astype(np.float32),
        "scene_seed": np.full(n, int(level.seed), dtype=np.int64),
        "frame_index": np.arange(n, dtype=np.int32),
    }


# --------------------------------------------------------------------------- shards on disk



def write_shard(path: str | os.PathLike, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    missing = [k for k in SHARD_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"shard is missing arrays {missing}")
    n = len(arrays["rgb"])
    for k in SHARD_KEYS:
        if k != "intrinsics" and len(arrays[k]) != n:
            raise ValueError(f"shard array {k!r} has {len(arrays[k])} rows, rgb has {n}")
    save = np.savez_compressed if compress else np.savez
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        save(f, **{k: arrays[k] for k in SHARD_KEYS})


def read_shard(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of one shard (pickle refused)."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in SHARD_KEYS if k not in z.files]
        if missing:
            raise ValueError(f"{path}: not a Mirage shard (missing arrays {missing})")
        return {k: z[k] for k in SHARD_KEYS}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = {k: np.concatenate([p[k] for p in parts]) for k in SHARD_KEYS if k != "intrinsics"}
    out["intrinsics"] = parts[0]["intrinsics"]
    return out


def write_shards(seeds: Iterable[int], frames_per_scene: int, out_dir: str | os.PathLike,
                 resolution: tuple[int, int] = (128, 128), fov: float = 70.0, shard_size: int = 1024,
                 progress: bool = True, *, depth_dtype: str = "float16", rng_seed: int = 0,
                 allow_eval_seeds: bool = False, overwrite: bool = False, compress: bool = True) -> dict:
    """Render a walk of `frames_per_scene` frames in each scene and write shards + manifest.

    A shard holds whole scenes (about `shard_size` frames), so training clips never
    straddle two files. Each scene's walk depends only on (rng_seed, scene seed), so
    any sub-range of seeds reproduces the same frames. Returns the manifest.
    """
    from tqdm import tqdm

    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    seeds = list(check_training_seeds(seeds, allow_eval_seeds))
    if frames_per_scene < 1:
        raise ValueError(f"frames per scene must be >= 1, got {frames_per_scene}")
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1 frame, got {shard_size}")
    if depth_dtype not in ("float16", "float32"):
        raise ValueError(f"depth dtype must be float16 or float32, got {depth_dtype!r}")
    w, h = (int(v) for v in resolution)
    out = Path(out_dir)
    if (out / "manifest.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a dataset (manifest.json); pass overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in list(out.glob("shard_*.npz")) + [out / "manifest.json"]:
            old.unlink(missing_ok=True)

    scenes_per_shard = max(1, shard_size // frames_per_scene)
    groups = [seeds[i:i + scenes_per_shard] for i in range(0, len(seeds), scenes_per_shard)]
    shards = []
    renderer = None
    bar = tqdm(total=len(seeds) * frames_per_scene, unit="frame", desc="dataset", disable=not progress)
    try:
        for si, group in enumerate(groups):
            parts = []
            for seed in group:
                level = generate_level(seed)
                if renderer is None:
                    renderer = Renderer(level, w, h, fov)
                rng = np.random.default_rng([int(rng_seed), int(seed)])
                parts.append(render_walk(renderer, level, frames_per_scene, rng, np.dtype(depth_dtype)))
                bar.update(frames_per_scene)
            name = f"shard_{si:05d}.npz"
            write_shard(out / name, _concat(parts), compress=compress)
            shards.append({"file": name, "frames": len(group) * frames_per_scene, "seeds": list(group)})
    finally:
        bar.close()
        if renderer is not None:
            renderer.close()

    manifest = {
        "format": DATASET_FORMAT,
        "resolution": [w, h],
        "fov_deg": float(fov),
        "frames_per_scene": int(frames_per_scene),
        "depth_dtype": depth_dtype,
        "rng_seed": int(rng_seed),
        "scenes": len(seeds),
        "frames": len(seeds) * frames_per_scene,
        "intrinsics": Intrinsics(w, h, float(fov)).matrix().tolist(),
        "arrays": list(SHARD_KEYS),
        "shards": shards,
    }
    text = json.dumps(manifest, indent=1).encode()
    atomic_bytes(out / "manifest.json", text)
    return manifest


def read_manifest(root: str | os.PathLike) -> dict:
    root = Path(root)
    path = root / "manifest.json" if root.is_dir() else root
    if not path.exists():
        raise FileNotFoundError(f"no dataset manifest at {path}")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != DATASET_FORMAT:
        raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {DATASET_FORMAT!r}")
    return manifest


class ShardDataset:
    """Map-style dataset of clips of `clip_len` consecutive frames from one scene.

    Works directly as a torch DataLoader dataset (items are dicts of numpy arrays,
    which the default collate turns into tensors). Keeps the last `cache_shards`
    shards decoded in memory; shuffle by shard for best throughput.
    """

    def __init__(self, root: str | os.PathLike, clip_len: int = 1, stride: int | None = None,
                 cache_shards: int = 2) -> None:
        if clip_len < 1:
            raise ValueError(f"clip_len must be >= 1, got {clip_len}")
        self.root = Path(root) if Path(root).is_dir() else Path(root).parent
        self.manifest = read_manifest(root)
        self.clip_len = int(clip_len)
        self.stride = int(stride or clip_len)
        self.cache_shards = max(1, int(cache_shards))
        self._cache: OrderedDict[int, dict] = OrderedDict()
        fps = int(self.manifest["frames_per_scene"])
        self.index: list[tuple[int, int]] = []  # (shard, first frame row)
        for si, shard in enumerate(self.manifest["shards"]):
            for k in range(len(shard["seeds"])):
                base = k * fps
                for start in range(0, fps - self.clip_len + 1, self.stride):
                    self.index.append((si, base + start))

    def __len__(self) -> int:
        return len(self.index)

    def shard(self, si: int) -> dict[str, np.ndarray]:
        if si in self._cache:
            self._cache.move_to_end(si)
            return self._cache[si]
        data = read_shard(self.root / self.manifest["shards"][si]["file"])
        self._cache[si] = data
        while len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return data

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        si, row = self.index[i]
        data = self.shard(si)
        sl = slice(row, row + self.clip_len)
        item = {k: data[k][sl] for k in SHARD_KEYS if k != "intrinsics"}
        item["intrinsics"] = data["intrinsics"]
        return item


# --------------------------------------------------------------------------- on the fly

class OnTheFlySource:
    """Endless clips of `clip_len` consecutive rendered frames, straight from the renderer.

    Picks a random scene from `seeds`, renders one walk of `frames_per_scene`
    frames, cuts it into `clips_per_scene` clips at random offsets, then moves on.
    The GL context is made in the iterating thread (on first `next`), so make the
    source in one thread and iterate it in another freely. Yields dicts with the
    shard arrays per clip: rgb (T, H, W, 3) uint8, depth (T, H, W) float32, pose
    (T, 5), c2w (T, 4, 4), intrinsics (3, 3), scene_seed (T,), frame_index (T,).

    It is a plain iterator (no torch needed); to feed several DataLoader workers, give
    each its own `rng_seed`, or they will all render the same scenes.
    """

    def __init__(self, seeds: Sequence[int] | range | tuple[int, int], clip_len: int = 8,
                 resolution: tuple[int, int] = (128, 128), fov: float = 70.0,
                 frames_per_scene: int = 256, clips_per_scene: int = 8, rng_seed: int = 0,
                 allow_eval_seeds: bool = False, max_clips: int | None = None) -> None:
        if isinstance(seeds, tuple) and len(seeds) == 2:
            seeds = range(int(seeds[0]), int(seeds[1]))
        seeds = check_training_seeds(seeds, allow_eval_seeds)
        if clip_len < 1 or frames_per_scene < clip_len:
            raise ValueError(f"need 1 <= clip_len <= frames_per_scene, got {clip_len} and {frames_per_scene}")
        self.seeds = seeds
        self.clip_len, self.frames_per_scene = int(clip_len), int(frames_per_scene)
        self.clips_per_scene = max(1, int(clips_per_scene))
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.fov = float(fov)
        self.rng = np.random.default_rng(rng_seed)
        self.max_clips = max_clips
        self._renderer = None
        self._pending: list[dict] = []
        self._emitted = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def _next_scene(self) -> None:
        from engine.world.levels import generate_level
        from engine.world.renderer import Renderer

        seed = int(self.seeds[int(self.rng.integers(len(self.seeds)))])
        level = generate_level(seed)
        if self._renderer is None:
            self._renderer = Renderer(level, *self.resolution, self.fov)
        walk = render_walk(self._renderer, level, self.frames_per_scene, self.rng)
        starts = self.rng.integers(0, self.frames_per_scene - self.clip_len + 1, size=self.clips_per_scene)
        for s in starts:
            sl = slice(int(s), int(s) + self.clip_len)
            clip = {k: walk[k][sl] for k in SHARD_KEYS if k != "intrinsics"}
            clip["intrinsics"] = walk["intrinsics"]
            self._pending.append(clip)

    def __next__(self) -> dict[str, np.ndarray]:
        if self.max_clips is not None and self._emitted >= self.max_clips:
            raise StopIteration
        if not self._pending:
            self._next_scene()
        self._emitted += 1
        return self._pending.pop(0)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> "OnTheFlySource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
