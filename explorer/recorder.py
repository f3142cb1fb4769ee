"""Recording what the viewport shows: an MP4 plus the walked trajectory, through export/.

Interruption safety comes from export.video.VideoWriter: every frame is appended to
a journal (`clip.mp4.partial.avi`) that is a playable video after each write, and
close() turns it into the MP4. So stopping (R), quitting, or a crash each leave a
playable file: the MP4 after a stop or quit, the journal after a hard crash (export's
`finish_partial` converts it). The trajectory is rewritten atomically every second of
recording, so a crash leaves it too, at most a second short.

The clip has one frame per shown frame at a fixed rate (the trajectory's fps): frames
are generated at an uneven pace, and a clip that replays the walk step by step is more
use than one that replays the stalls. Its frame size is fixed by the first frame; a
later layout change (compare on, ground truth pane) is letterboxed into it.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from engine.camera import Pose
from engine.trajectory import Trajectory
from export.compose import BACKGROUND
from export.trajectory_out import write_walk_csv, write_walked_trajectory
from export.video import VideoWriter

RECORD_FPS = 15.0
TRAJECTORY_EVERY = 15      # frames between crash-safety rewrites of the trajectory files


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`frame` scaled to fit (w, h) with its aspect kept, centred on the compose background."""
    w, h = size
    fh, fw = frame.shape[:2]
    if (fw, fh) == (w, h):
        return frame
    k = min(w / fw, h / fh)
    nw, nh = max(1, int(fw * k)), max(1, int(fh * k))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_NEAREST)
    out = np.empty((h, w, 3), np.uint8)
    out[:] = BACKGROUND
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


def trajectory_paths(clip: Path) -> tuple[Path, Path]:
    stem = clip.with_suffix("")
    return stem.with_name(stem.name + ".trajectory.json"), stem.with_name(stem.name + ".trajectory.csv")


class Recorder(QObject):
    finished = Signal(str, str)      # (level, message) once a clip is encoded or failed

    def __init__(self, fps: float = RECORD_FPS) -> None:
        super().__init__()
        self.fps = fps
        self.writer: VideoWriter | None = None
        self.path: Path | None = None
        self.started = 0.0
        self.poses: list[Pose] = []
        self.observed: list[bool] = []
        self._meta: dict = {}
        self._closing: list[threading.Thread] = []

    @property
    def active(self) -> bool:
        return self.path is not None

    @property
    def frames(self) -> int:
        return len(self.poses)

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started if self.active else 0.0

    def start(self, folder: Path, scene_seed: int, fov_deg: float, image_size: int, path: Path | None = None) -> Path:
        """Begin a recording; the video file opens with the first frame (its size is known then)."""
        if self.active:
            raise RuntimeError("already recording")
        if path is None:
            folder.mkdir(parents=True, exist_ok=True)
            path = _unique(folder / time.strftime("mirage-%Y%m%d-%H%M%S.mp4"))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.started = Path(path), time.monotonic()
        self.poses, self.observed = [], []
        self._meta = {"seed": int(scene_seed), "fov": float(fov_deg), "size": int(image_size)}
        return self.path

    def add(self, frame: np.ndarray, pose: Pose, observed: bool) -> None:
        if not self.active:
            return
        if self.writer is None:
            h, w = frame.shape[:2]
            self.writer = VideoWriter(self.path, self.fps, size=(w, h))
        self.writer.write(fit_frame(frame, self.writer.size))
        self.poses.append(pose)
        self.observed.append(bool(observed))
        if len(self.poses) % TRAJECTORY_EVERY == 1:
            self._write_trajectory()

    def _write_trajectory(self) -> None:
        if not self.poses:
            return
        lead = 0
        while lead < len(self.observed) and self.observed[lead]:
            lead += 1
        # The format needs at least one observed frame: a replay observes the first pose and
        # generates the rest, which is exactly how this walk began when recording started mid-walk.
        m = self._meta
        traj = Trajectory(m["seed"], list(self.poses), self.fps, m["fov"], (m["size"], m["size"]), max(1, lead), [],
                          "walk")
        json_path, csv_path = trajectory_paths(self.path)
        write_walked_trajectory(traj, json_path)
        write_walk_csv(csv_path, self.poses, self.observed)   # the CSV keeps every frame's true flag

    def stop(self, wait: bool = False) -> Path | None:
        """Stop; the MP4 is encoded in the background (or now with wait=True, as on quit)."""
        if not self.active:
            return None
        path, writer, frames = self.path, self.writer, self.frames
        self._write_trajectory()
        self.path, self.writer = None, None
        if writer is None:
            self.finished.emit("warning", f"recording {path.name}: no frame was shown, nothing written")
            return None

        def close() -> None:
            try:
                writer.close()
                self.finished.emit("info", f"recorded {frames} frames to {path}")
            except Exception as e:  # noqa: BLE001 - the journal is kept and named in the message
                self.finished.emit("error", f"recording {path}: {e}")

        if wait:
            close()
        else:
            t = threading.Thread(target=close, name="finish-recording")
            t.start()
            self._closing.append(t)
        return path

    def wait_closed(self, timeout_s: float = 120.0) -> None:
        """Wait for background encodes (before the process exits, so no MP4 is left half made)."""
        for t in self._closing:
            t.join(timeout_s)
        self._closing = [t for t in self._closing if t.is_alive()]

    def abort(self) -> None:
        """Last resort on a crash: keep the playable journal, do not encode."""
        if self.writer is not None:
            self.writer.abort()
        self.path, self.writer = None, None


def _unique(path: Path) -> Path:
    n, out = 2, path
    while out.exists():
        out = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return out
