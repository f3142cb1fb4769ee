"""Video clips that survive interruption: an MJPEG AVI journal, finished into MP4 on close.

An MP4 is only playable once its index (the `moov` box) is written, and a muxer writes
that at the end: a recorder killed mid-clip leaves an unplayable file. So frames are not
written straight into the MP4. Each one goes into a *journal*, `<clip>.partial.avi`,
which is a complete, playable MJPEG AVI after every frame:

- each frame is a JPEG in its own `00dc` chunk, appended with one unbuffered write;
- then the header's frame counts and RIFF/`movi` sizes are rewritten in place (fixed
  offsets, 4 bytes each), so the header always describes exactly the frames on disk;
- there is no `idx1` index (it is optional in AVI), so nothing at the end is needed.

Killed (SIGKILL, power cut after the page cache is flushed) at any point, the journal
holds every frame whose `write()` returned; at worst one more chunk than the header
counts, which readers take or skip. If a write fails (disk full, file-size limit) the
half-written chunk is cut off again (`ftruncate`, which frees space rather than needing
it) and a `VideoWriteError` names the clip and the playable journal.

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
import struct
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from export.files import temp_path

__all__ = ["CODECS", "CodecUnavailable", "VideoWriteError", "VideoWriter", "MjpegJournal", "finish_partial",
           "journal_path", "read_journal_frames"]

CODECS = ("mp4v", "h264")
CONTAINERS = (".mp4", ".m4v", ".mov", ".mkv")
JOURNAL_SUFFIX = ".partial.avi"
_AVI_LIMIT = (1 << 32) - 1
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


def journal_path(path: str | os.PathLike) -> Path:
    """Where the playable journal of a clip lives while it is recorded: `clip.mp4.partial.avi`."""
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


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


# --------------------------------------------------------------------------- journal

# Byte offsets of the header fields rewritten after every frame.
_RIFF_SIZE, _AVIH_FRAMES, _AVIH_BUFFER, _STRH_LENGTH, _STRH_BUFFER, _MOVI_SIZE = 4, 48, 60, 140, 144, 216
_MOVI_DATA = 224


def _header(width: int, height: int, fps: float) -> bytes:
    rate = Fraction(fps).limit_denominator(1001)
    avih = struct.pack("<14I", round(1e6 / fps), 0, 0, 0, 0, 0, 1, 0, width, height, 0, 0, 0, 0)  # flags 0: no idx1
    strh = struct.pack("<4s4sIHHIIIIIIII4h", b"vids", b"MJPG", 0, 0, 0, 0, rate.denominator, rate.numerator,
                       0, 0, 0, 0xFFFFFFFF, 0, 0, 0, width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    strl = b"strl" + b"strh" + struct.pack("<I", len(strh)) + strh + b"strf" + struct.pack("<I", len(strf)) + strf
    hdrl = b"hdrl" + b"avih" + struct.pack("<I", len(avih)) + avih + b"LIST" + struct.pack("<I", len(strl)) + strl
    head = b"RIFF" + struct.pack("<I", 0) + b"AVI " + b"LIST" + struct.pack("<I", len(hdrl)) + hdrl
    head += b"LIST" + struct.pack("<I", 4) + b"movi"
    assert len(head) == _MOVI_DATA, len(head)
    return head


class MjpegJournal:
    """An MJPEG AVI that is complete and playable after every appended frame."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], quality: int = 95) -> None:
        import cv2

        self.path = Path(path)
        self.width, self.height = (int(v) for v in size)
        self._params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
        if hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):  # 4:4:4 keeps thin coloured text crisp
            self._params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        self.frames = 0
        self._end = _MOVI_DATA
        self._max_chunk = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            self._write_all(_header(self.width, self.height, fps), 0)
        except OSError:
            os.close(self._fd)
            self._fd = -1
            raise

    def _write_all(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n

    def append(self, bgr: np.ndarray) -> None:
        """Append one BGR frame; raises OSError with the journal still valid (the partial chunk cut off)."""
        import cv2

        ok, jpeg = cv2.imencode(".jpg", bgr, self._params)
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a frame")
        data = jpeg.tobytes()
        chunk = b"00dc" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
        if self._end + len(chunk) > _AVI_LIMIT:
            raise OSError(errno.EFBIG, "the recording journal reached the AVI size limit of 4 GiB "
                                       f"after {self.frames} frames")
        try:
            self._write_all(chunk, self._end)
        except OSError:
            try:
                os.ftruncate(self._fd, self._end)  # shrinking needs no space: the file stays a valid AVI
            except OSError:
                pass  # the header still counts only whole frames; readers stop at the torn chunk
            raise
        self._end += len(chunk)
        self.frames += 1
        self._max_chunk = max(self._max_chunk, len(data))
        # The header now catches up; a kill between the two leaves one uncounted but whole chunk.
        pack = struct.pack
        self._write_all(pack("<I", self._end - 8), _RIFF_SIZE)
        self._write_all(pack("<I", self.frames), _AVIH_FRAMES)
        self._write_all(pack("<I", self._max_chunk + 8), _AVIH_BUFFER)
        self._write_all(pack("<I", self.frames), _STRH_LENGTH)
        self._write_all(pack("<I", self._max_chunk + 8), _STRH_BUFFER)
        self._write_all(pack("<I", self._end - _MOVI_DATA + 4), _MOVI_SIZE)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_journal_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """RGB frames of a journal (complete or cut short), straight from its chunks."""
    import cv2

    with open(path, "rb") as fh:
        head = fh.read(_MOVI_DATA)
        if len(head) < _MOVI_DATA or head[:4] != b"RIFF" or head[8:12] != b"AVI " or head[-4:] != b"movi":
            raise ValueError(f"{path}: not a recording journal (MJPEG AVI)")
        while True:
            tag = fh.read(8)
            if len(tag) < 8:
                return
            size = struct.unpack("<I", tag[4:])[0]
            data = fh.read(size + (size & 1))
            if len(data) < size:
                return  # a torn last chunk: everything before it is intact
            if tag[:4] != b"00dc":
                continue
            bgr = cv2.imdecode(np.frombuffer(data[:size], dtype=np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                return
            yield np.ascontiguousarray(bgr[..., ::-1])


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
        with open(partial, "rb") as fh:
            head = fh.read(_MOVI_DATA)
        scale, rate = struct.unpack("<II", head[128:136])
        fps = rate / scale
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
