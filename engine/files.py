"""Atomic file writes: the one helper every writer of the project uses (engine, export, explorer).

A file is written under a hidden temporary name beside its target (a rename is only atomic
within one file system), flushed to disk, then renamed over the target; on any failure the
temporary file is removed and the old target, if any, is untouched. So a crash, a kill or a
full disk never leaves a half-written file that a later run would trust. Temporary files are
created exclusively with the permissions a plain `open` gives (0666 less the umask), unlike
tempfile.mkstemp's 0600.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_bytes", "atomic_json", "atomic_path", "atomic_text", "json_safe", "temp_path"]


def temp_path(target: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """Create (exclusively, empty) and return a hidden temporary file beside `target`."""
    target = Path(target)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {target}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `path` for any writer (safetensors, numpy, OpenCV) to fill; it
    replaces `path` when the block ends without an error and is removed when it raises.
    `suffix` keeps an extension a writer needs (".tmp.mp4" for a video muxer)."""
    path = Path(path)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def atomic_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """`obj` with every NaN or infinite float replaced by None, so it is strict JSON (null) that every
    reader accepts; Python's json writes NaN literals that are not JSON at all."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_json(path: str | os.PathLike, obj, indent: int = 1) -> Path:
    """Write `obj` as strict JSON (NaN and infinities as null) to `path` atomically."""
    return atomic_text(path, json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n")
