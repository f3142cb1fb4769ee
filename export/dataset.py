"""A walk as a posed image dataset (nerfstudio `transforms.json`), and back into a Trajectory.

Layout, the same as `mirage render` writes for ground truth:

    DIR/transforms.json        intrinsics (OPENCV pinhole, no distortion), one
                               `transform_matrix` per frame: camera-to-world, OpenGL axes
                               (x right, y up, looking along -z), which is nerfstudio's own
    DIR/frame_00000.png ...    RGB
    DIR/depth_00000.npy ...    float32 metres along the view axis (depth="npy"), or
    DIR/depth_00000.png ...    16-bit PNG millimetres, clipped at 65.535 m (depth="png16")

plus a `mirage` block (scene seed, fps, observe count, revisits, which session made the
frames) that lets read_transforms rebuild the exact Trajectory. Frames are written as
they come; transforms.json is written last and atomically, so a folder that has one is
complete. Files from other tools import too, as long as their cameras have no roll.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.camera import Intrinsics, Pose, from_nerfstudio, to_nerfstudio
from engine.trajectory import Trajectory, trajectory_from_dict, trajectory_to_dict
from export.files import atomic_text

__all__ = ["DEPTH_FORMATS", "DatasetWriteError", "DatasetWriter", "read_depth", "read_transforms"]

DEPTH_FORMATS = ("npy", "png16", "none")
TRANSFORMS = "transforms.json"


def _imwrite(path: Path, image: np.ndarray) -> None:
    try:
        ok = cv2.imwrite(str(path), image)
    except cv2.error as e:   # OpenCV raises its own error type for some I/O failures
        raise OSError(f"OpenCV could not write it: {str(e).strip()[-120:]}") from None
    if not ok:
        raise OSError("OpenCV could not write it (disk full or folder gone?)")


class DatasetWriteError(OSError):
    """A dataset file could not be written (typically a full disk): names the file and what the
    folder keeps, so the walk's error can say both."""


def read_depth(path: str | os.PathLike) -> np.ndarray:
    """A depth file as float32 metres (.npy metres, or 16-bit .png millimetres)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False).astype(np.float32)
    mm = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mm is None or mm.dtype != np.uint16:
        raise ValueError(f"{path}: not a 16-bit depth PNG")
    return mm.astype(np.float32) / 1000.0


class DatasetWriter:
    """Stream frames into DIR; `close()` writes transforms.json.

        with DatasetWriter(out, Intrinsics(64, 64, 70), depth="npy", meta={...}) as ds:
            ds.add(rgb, pose, depth)      # uint8 (H, W, 3) RGB, Pose, float32 (H, W) metres
    """

    def __init__(self, out_dir: str | os.PathLike, intrinsics: Intrinsics, depth: str = "npy",
                 meta: dict | None = None, overwrite: bool = False) -> None:
        if depth not in DEPTH_FORMATS:
            raise ValueError(f"depth format must be one of {', '.join(DEPTH_FORMATS)}, got {depth!r}")
        self.out = Path(out_dir)
        self.intrinsics, self.depth_format, self.meta = intrinsics, depth, dict(meta or {})
        if self.out.exists() and not self.out.is_dir():
            raise NotADirectoryError(f"{self.out} is a file; the dataset needs a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not overwrite:
            raise FileExistsError(f"{self.out} is not empty; pass --overwrite to replace the dataset in it")
        self.out.mkdir(exist_ok=True)
        stale = [*self.out.glob("frame_*.png"), *self.out.glob("depth_*.npy"), *self.out.glob("depth_*.png")]
        for old in [self.out / TRANSFORMS, *stale]:  # only reached for an empty folder or with overwrite
            old.unlink(missing_ok=True)
        self.poses: list[Pose] = []
        self.files: list[str] = []
        self.depth_files: list[str] = []
        self.closed = False

    def add(self, rgb: np.ndarray, pose: Pose, depth: np.ndarray | None = None) -> None:
        w, h = self.intrinsics.width, self.intrinsics.height
        if rgb.dtype != np.uint8 or rgb.shape != (h, w, 3):
            raise ValueError(f"dataset frames must be uint8 ({h}, {w}, 3), got {rgb.dtype} {rgb.shape}")
        i = len(self.poses)
        if self.depth_format != "none" and (depth is None or depth.shape != (h, w)):
            raise ValueError(f"frame {i}: depth of shape ({h}, {w}) needed, got "
                             f"{None if depth is None else depth.shape}")
        name = f"frame_{i:05d}.png"
        self._write(self.out / name, lambda path: _imwrite(path, np.ascontiguousarray(rgb[..., ::-1])))
        if self.depth_format != "none":
            if self.depth_format == "npy":
                dname = f"depth_{i:05d}.npy"
                self._write(self.out / dname, lambda path: np.save(path, np.asarray(depth, dtype=np.float32)),
                            self.out / name)
            else:
                dname = f"depth_{i:05d}.png"
                mm = np.clip(np.rint(np.nan_to_num(depth, nan=0.0) * 1000.0), 0, 65535).astype(np.uint16)
                self._write(self.out / dname, lambda path: _imwrite(path, mm), self.out / name)
            self.depth_files.append(dname)
        self.files.append(name)
        self.poses.append(pose)

    def _write(self, path: Path, write, frame_file: Path | None = None) -> None:
        """Run `write(path)`; on failure remove the half-written file (and `frame_file`, this frame's
        image written before its depth, so every frame left has both) and raise DatasetWriteError
        naming it and the frames the folder keeps (numpy's short-write error names no file at all)."""
        try:
            write(path)
        except OSError as e:
            path.unlink(missing_ok=True)
            if frame_file is not None:
                frame_file.unlink(missing_ok=True)
            n = len(self.poses)
            kept = (f"{self.out} keeps the {n} frames before it, without {TRANSFORMS}" if n
                    else f"{self.out} holds no frame yet")
            raise DatasetWriteError(e.errno or 0, f"could not be written ({e.strerror or e}); {kept}",
                                    str(path)) from None

    def close(self) -> Path:
        if not self.poses:
            raise ValueError(f"{self.out}: no frames were added; nothing to describe")
        data = to_nerfstudio(self.poses, self.intrinsics, self.files,
                             self.depth_files if self.depth_format != "none" else None)
        units = {"npy": "metres", "png16": "millimetres", "none": None}[self.depth_format]
        data["mirage"] = {"format": "mirage-dataset/1", "depth": self.depth_format, "depth_units": units,
                          "fov_deg": self.intrinsics.fov_deg, **self.meta}
        path = atomic_text(self.out / TRANSFORMS, json.dumps(data, indent=1) + "\n")
        self.closed = True
        return path

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self.closed:
            self.close()


def _load(path: Path) -> tuple[Path, dict]:
    if path.is_dir():
        path = path / TRANSFORMS
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such transforms.json") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: transforms.json must hold a JSON object")
    return path, data


def is_transforms(path: str | os.PathLike) -> bool:
    """True for a transforms.json (or a folder holding one) rather than a mirage-trajectory file."""
    path = Path(path)
    if path.is_dir():
        return (path / TRANSFORMS).is_file()
    if path.name == TRANSFORMS:
        return True
    try:
        with open(path, encoding="utf-8") as fh:
            head = fh.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return '"transform_matrix"' in head or '"fl_y"' in head


def read_transforms(path: str | os.PathLike, scene_seed: int | None = None, fps: float | None = None,
                    observe: int | None = None) -> Trajectory:
    """A Trajectory from a transforms.json file (or the folder holding it).

    The `mirage` block, when present, gives the scene seed, fps, observe count, revisits
    and kind; arguments override it, and a file from another tool needs `scene_seed`.
    """
    path, data = _load(Path(path))
    try:
        poses, intr = from_nerfstudio(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if not poses:
        raise ValueError(f"{path}: no frames")
    mb: dict[str, Any] = data.get("mirage") if isinstance(data.get("mirage"), dict) else {}
    seed = scene_seed if scene_seed is not None else mb.get("scene_seed")
    if seed is None:
        raise ValueError(f"{path}: no scene seed in the file (no 'mirage' block); give one (--scene-seed N)")
    n = len(poses)
    # The mirage block's values go through the trajectory format's own checks below, as they are:
    # a seed of 7.9 or [7] is named there, never truncated or crashed on here.
    d = trajectory_to_dict(Trajectory(0, poses, 15.0, intr.fov_deg, (intr.width, intr.height)))
    d["scene"] = {"seed": seed}
    d["fps"] = fps if fps is not None else mb.get("fps", 15)
    obs = observe if observe is not None else mb.get("observe", 1)
    d["observe"] = min(obs, n) if isinstance(obs, int) and not isinstance(obs, bool) else obs
    revisits = mb.get("revisits", [])
    if isinstance(revisits, list):   # pairs beyond the frames kept (an imported walk cut short) are dropped
        revisits = [p for p in revisits if not (isinstance(p, list) and len(p) == 2
                                                and all(isinstance(v, int) for v in p) and max(p) >= n)]
    d["revisits"] = revisits
    if mb.get("kind") is not None:
        d["kind"] = mb["kind"]
    # the same validation as a trajectory file: a bad value is named, not silently used
    return trajectory_from_dict(d, source=str(path))
