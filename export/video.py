"""Video clips that survive interruption: an MJPEG AVI journal, finished into MP4 on close.

An MP4 is only playable once its index (the `moov` box) is written, and a muxer writes
that at the end: a recorder killed mid-clip leaves an unplayable file. So frames are not
written straight into the MP4. Each one goes into a *journal*, `<clip>.partial.avi`,
an MJPEG AVI that is complete and playable after every frame (`export.journal`): killed
at any point, it holds every frame whose `write()` returned. If a write fails (disk full,
file-size limit) a `VideoWriteError` names the clip and the playable journal.

`close()` re-encodes the journal into the requested container and codec (`mp4v` with
OpenCV, or H.264 with PyAV, the `[h264]` extra) under a temporary name in the same
folder, renames it into place atomically and deletes the journal. Journal frames are
JPEG quality 95 with 4:4:4 chroma, well above what the final codec keeps.

Frames are uint8 H x W x 3 RGB. Odd widths or heights are padded by one edge pixel in
the final video (4:2:0 codecs need even sizes); the journal keeps the exact size.
The journal format is limited to 4 GiB (32-bit AVI sizes): about 70 minutes of
three 256 px panes at 15 fps.
"""
from __future__ import annotations

import errno
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from export.files import temp_path
from export.journal import (
    JOURNAL_SUFFIX,
    MjpegJournal,
    journal_fps,
    journal_path,
    read_journal_frames,
)

__all__ = ["CODECS", "CodecUnavailable", "VideoWriteError", "VideoWriter", "MjpegJournal", "finish_partial",
           "journal_path", "read_journal_frames"]

CODECS = ("mp4v", "h264")
CONTAINERS = (".mp4", ".m4v", ".mov", ".mkv")
_H264_ENCODERS = ("libx264", "h264", "libopenh264")


class VideoWriteError(OSError):
    """Writing a clip failed (disk full, file-size limit, I/O error); `partial` is the playable journal."""

    def __init__(self, message: str, partial: Path | None = None, frames: int = 0, err: int | None = None) -> None:
        super().__init__(message)
        self.partial = partial
        self.frames = frames
        if err is not None:
            self.errno = err


class CodecUnavailable(ValueError):
    """The codec asked for needs something not installed here (H.264 needs PyAV)."""


def _h264_encoder() -> str:
    try:
        import av  # noqa: F401
    except ImportError:
        raise CodecUnavailable("H.264 export needs PyAV, the optional extra [h264]: pip install -e \".[h264]\" "
                               "(or pip install av); or use the default codec mp4v") from None
    import av.codec

    for name in _H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises several types for unknown codecs
            continue
    raise CodecUnavailable(f"this PyAV build has no H.264 encoder (tried {', '.join(_H264_ENCODERS)}); "
                           "use the default codec mp4v")


def check_codec(codec: str) -> None:
    """Raise CodecUnavailable / ValueError now rather than when a long recording ends."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    if codec == "h264":
        _h264_encoder()


# --------------------------------------------------------------------------- final encode

def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def _encode(frames: Iterator[np.ndarray], out: Path, fps: float, codec: str) -> int:
    """Encode RGB frames into `out` (its suffix picks the container); returns the frame count."""
    n = 0
    if codec == "mp4v":
        import cv2

        writer = None
        try:
            for frame in frames:
                frame = _even(frame)
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
                    if not writer.isOpened():
                        raise OSError(f"OpenCV could not open an mp4v writer for {out}")
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
                n += 1
        finally:
            if writer is not None:
                writer.release()
        # OpenCV reports no write errors: a full disk leaves an MP4 without its index.
        # Read the index back before anyone renames this file into place.
        cap = cv2.VideoCapture(str(out))
        got = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else -1
        cap.release()
        if n and got != n:
            full = shutil.disk_usage(out.parent).free < (1 << 20)
            raise OSError(errno.ENOSPC if full else errno.EIO,
                          f"OpenCV's mp4v encoder left an incomplete file ({got} of {n} frames readable)"
                          + ("; the disk is full" if full else ""))
        return n
    import av

    encoder = _h264_encoder()
    container = av.open(str(out), mode="w")
    try:
        stream = None
        for frame in frames:
            frame = _even(frame)
            if stream is None:
                stream = container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18", "preset": "medium"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode(None):
                container.mux(packet)
    finally:
        container.close()
    return n


def finish_partial(partial: str | os.PathLike, out: str | os.PathLike | None = None, fps: float | None = None,
                   codec: str = "mp4v") -> Path:
    """Turn a journal left by an interrupted recording into the clip it was meant to become.

    `out` defaults to the journal's name without `.partial.avi`; `fps` to the journal's own.
    The journal is kept (delete it yourself once the clip is checked).
    """
    partial = Path(partial)
    if out is None:
        if not partial.name.endswith(JOURNAL_SUFFIX):
            raise ValueError(f"{partial}: give `out`, the name does not end in {JOURNAL_SUFFIX}")
        out = partial.with_name(partial.name[:-len(JOURNAL_SUFFIX)])
    if fps is None:
        fps = journal_fps(partial)
    check_codec(codec)
    return _atomic_encode(read_journal_frames(partial), Path(out), fps, codec)[0]


def _atomic_encode(frames: Iterator[np.ndarray], out: Path, fps: float, codec: str) -> tuple[Path, int]:
    tmp = temp_path(out, suffix=f".tmp{out.suffix}")  # the suffix tells the muxer the container
    try:
        n = _encode(frames, tmp, fps, codec)
        if n == 0:
            raise ValueError(f"{out}: no frames to encode")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out, n


# --------------------------------------------------------------------------- writer

def _frames(n: int) -> str:
    return f"{n} frame" if n == 1 else f"{n} frames"


class VideoWriter:
    """Write a clip frame by frame; see the module docstring for what survives interruption.

        with VideoWriter("clip.mp4", fps=15, size=(384, 128)) as vw:
            for frame in frames:          # uint8 (H, W, 3) RGB
                vw.write(frame)
        # clip.mp4 appears (atomically) when the block ends without an exception

    An exception inside the block, or `abort()`, keeps the playable journal
    (`clip.mp4.partial.avi`) instead of producing the clip. `close()` re-encodes the
    journal; for a long GUI recording call it off the UI thread.
    """

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], codec: str = "mp4v",
                 quality: int = 95) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in CONTAINERS:
            raise ValueError(f"{self.path}: a clip must end in one of {', '.join(CONTAINERS)}")
        check_codec(codec)
        fps = float(fps)
        if not (np.isfinite(fps) and 0 < fps <= 1000):
            raise ValueError(f"fps must be in (0, 1000], got {fps}")
        w, h = (int(v) for v in size)
        if w < 2 or h < 2:
            raise ValueError(f"frame size must be at least 2x2, got {w}x{h}")
        self.fps, self.size, self.codec = fps, (w, h), codec
        self.partial_path = journal_path(self.path)
        self.frames_written = 0
        self.closed = False
        self.failed: VideoWriteError | None = None
        self.result: Path | None = None
        try:
            self._journal = MjpegJournal(self.partial_path, fps, (w, h), quality)
        except OSError as e:
            raise VideoWriteError(f"cannot start recording {self.path}: cannot create {self.partial_path}: "
                                  f"{e.strerror or e}", None, 0, e.errno) from e

    def write(self, frame: np.ndarray) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: write() after close()")
        if self.failed is not None:
            raise self.failed
        w, h = self.size
        if not (isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.shape == (h, w, 3)):
            got = f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}"
            raise ValueError(f"{self.path}: frames must be uint8 ({h}, {w}, 3) RGB, got {got}")
        try:
            self._journal.append(np.ascontiguousarray(frame[..., ::-1]))
        except OSError as e:
            self._journal.close()
            n = self.frames_written
            what = {errno.ENOSPC: "the disk is full",
                    errno.EFBIG: "the file-size limit was reached"}.get(e.errno, e.strerror or str(e))
            if n:
                kept = f"the {_frames(n)} written so far are kept, playable, in {self.partial_path}"
            else:
                self.partial_path.unlink(missing_ok=True)
                kept = "nothing was recorded"
            self.failed = VideoWriteError(f"writing {self.path} failed after {_frames(n)}: {what}; {kept}",
                                          self.partial_path if n else None, n, e.errno)
            raise self.failed from e
        self.frames_written += 1

    def abort(self) -> Path | None:
        """Stop without encoding; returns the playable journal (None if no frame was written)."""
        if not self.closed:
            self.closed = True
            self._journal.close()
            if self.frames_written == 0 and self.partial_path.exists():
                self.partial_path.unlink()
        return self.partial_path if self.frames_written else None

    def close(self) -> Path | None:
        """Encode the journal into the clip, rename it into place, delete the journal.

        Returns the clip's path (None when no frame was written: then nothing is left behind).
        After a failed write, keeps the journal and re-raises the failure.
        """
        if self.closed:
            return self.result
        if self.failed is not None:
            self.abort()
            raise self.failed
        self.closed = True
        self._journal.close()
        if self.frames_written == 0:
            self.partial_path.unlink(missing_ok=True)
            return None
        try:
            _, n = _atomic_encode(read_journal_frames(self.partial_path), self.path, self.fps, self.codec)
        except Exception as e:  # noqa: BLE001 - OpenCV and PyAV fail in their own ways; the journal stays
            self.failed = VideoWriteError(
                f"encoding {self.path} failed: {getattr(e, 'strerror', None) or e}; the {_frames(self.frames_written)} "
                f"are kept, playable, in {self.partial_path}", self.partial_path, self.frames_written,
                getattr(e, "errno", None))
            raise self.failed from e
        if n != self.frames_written:  # never expected: the journal is ours
            raise VideoWriteError(f"{self.path}: encoded {n} of {self.frames_written} frames; "
                                  f"the journal {self.partial_path} is kept", self.partial_path, n)
        self.partial_path.unlink()
        self.result = self.path
        return self.path

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
