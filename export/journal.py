"""The recording journal: an MJPEG AVI that is complete and playable after every frame.

A clip is recorded into `<clip>.partial.avi` first (export.video finishes it into the MP4):

- each frame is a JPEG in its own `00dc` chunk, appended with one unbuffered write;
- then the header's frame counts and RIFF/`movi` sizes are rewritten in place (fixed
  offsets, 4 bytes each), so the header always describes exactly the frames on disk;
- there is no `idx1` index (it is optional in AVI), so nothing at the end is needed.

Killed at any point, the journal holds every frame whose `append()` returned; at worst one
more chunk than the header counts, which readers take or skip. A failed write cuts the
half-written chunk off again (`ftruncate` frees space rather than needing it). Frames are
JPEG quality 95 with 4:4:4 chroma. The format is limited to 4 GiB (32-bit AVI sizes).
"""
from __future__ import annotations

import errno
import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

JOURNAL_SUFFIX = ".partial.avi"
_AVI_LIMIT = (1 << 32) - 1


def journal_path(path: str | os.PathLike) -> Path:
    """Where the playable journal of a clip lives while it is recorded: `clip.mp4.partial.avi`."""
    path = Path(path)
    return path.with_name(path.name + JOURNAL_SUFFIX)


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


def _read_header(fh, path) -> bytes:
    """The fixed-size header of a journal open for reading, checked; raises ValueError naming `path`."""
    head = fh.read(_MOVI_DATA)
    if len(head) < _MOVI_DATA or head[:4] != b"RIFF" or head[8:12] != b"AVI " or head[-4:] != b"movi":
        raise ValueError(f"{path}: not a recording journal (MJPEG AVI)")
    return head


def journal_fps(path: str | os.PathLike) -> float:
    """The frame rate a journal was recorded at (its stream header's rate / scale)."""
    with open(path, "rb") as fh:
        head = _read_header(fh, path)
    scale, rate = struct.unpack("<II", head[128:136])
    if scale == 0 or rate == 0:
        raise ValueError(f"{path}: journal header has no frame rate (rate {rate}, scale {scale})")
    return rate / scale


def read_journal_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """RGB frames of a journal (complete or cut short), straight from its chunks."""
    import cv2

    with open(path, "rb") as fh:
        _read_header(fh, path)
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
