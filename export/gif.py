"""Animated GIFs of clips, for sharing (Pillow).

Either stream frames into a GifWriter while a walk runs (the GIF then never passes
through a lossy video codec), or make one from a finished clip with clip_to_gif.
GIF holds 256 colours per frame and its frame delays are whole hundredths of a second;
frames are kept palettised (1 byte a pixel) until close, when the file is written
atomically. `every` keeps one frame in so many and `max_width` shrinks wide clips,
which keeps GIFs small enough to put in a README.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from export.files import atomic_bytes

__all__ = ["GifWriter", "clip_to_gif", "read_clip_frames"]


class GifWriter:
    def __init__(self, path: str | os.PathLike, fps: float, every: int = 1, max_width: int | None = None,
                 loop: bool = True) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.path = Path(path)
        if self.path.suffix.lower() != ".gif":
            raise ValueError(f"{self.path}: a GIF's name must end in .gif")
        self.fps, self.every, self.max_width, self.loop = float(fps), int(every), max_width, loop
        self._frames: list = []
        self._seen = 0
        self._shape: tuple[int, int] | None = None

    @property
    def frames_kept(self) -> int:
        return len(self._frames)

    def write(self, frame: np.ndarray) -> None:
        """Add one uint8 (H, W, 3) RGB frame (kept if it is one of every `every`)."""
        from PIL import Image

        keep = self._seen % self.every == 0
        self._seen += 1
        if not keep:
            return
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"GIF frames must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
        if self._frames and frame.shape[:2] != self._shape:
            raise ValueError(f"GIF frames must all be {self._shape}, got {frame.shape[:2]}")
        self._shape = frame.shape[:2]
        img = Image.fromarray(np.ascontiguousarray(frame), "RGB")
        if self.max_width and img.width > self.max_width:
            img = img.resize((self.max_width, max(1, round(img.height * self.max_width / img.width))),
                             Image.Resampling.LANCZOS)
        # An adaptive palette per frame, without dithering: flat colours stay flat and
        # the frames compress well.
        self._frames.append(img.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))

    def close(self) -> Path:
        if not self._frames:
            raise ValueError(f"{self.path}: no frames for the GIF")
        buf = io.BytesIO()
        delay = max(20, round(1000.0 * self.every / self.fps / 10.0) * 10)  # ms; browsers slow delays under 20 ms
        first, rest = self._frames[0], self._frames[1:]
        extra = {"loop": 0} if self.loop else {}
        first.save(buf, format="GIF", save_all=True, append_images=rest, duration=delay, disposal=1,
                   optimize=False, **extra)
        self._frames = []
        return atomic_bytes(self.path, buf.getvalue())

    def __enter__(self) -> "GifWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def read_clip_frames(path: str | os.PathLike) -> Iterable[np.ndarray]:
    """RGB frames of a video file, read with OpenCV."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this video")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield np.ascontiguousarray(bgr[..., ::-1])
    finally:
        cap.release()


def clip_to_gif(clip: str | os.PathLike, out: str | os.PathLike, fps: float | None = None, every: int = 1,
                max_width: int | None = None) -> Path:
    """A GIF of a video clip (fps defaults to the clip's own)."""
    clip = Path(clip)
    if not clip.is_file():
        raise FileNotFoundError(f"{clip}: no such clip")
    if fps is None:
        import cv2

        cap = cv2.VideoCapture(str(clip))
        fps = cap.get(cv2.CAP_PROP_FPS) or 15.0
        cap.release()
    gw = GifWriter(out, fps, every=every, max_width=max_width)
    for frame in read_clip_frames(clip):
        gw.write(frame)
    return gw.close()
