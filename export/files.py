"""Small file helpers shared by the exporters: atomic writes and early output checks.

Temporary files are created next to their target (a rename is only atomic within one
file system) with a random name, exclusively, and with the permissions a plain `open`
would give (0666 less the umask), unlike tempfile.mkstemp's 0600.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["OutputError", "atomic_bytes", "atomic_text", "check_output_file", "check_writable_dir", "temp_path"]


class OutputError(ValueError):
    """An output that cannot be written: a missing or unwritable folder, an existing file."""


def temp_path(target: Path, suffix: str = ".tmp") -> Path:
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


def atomic_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, fsync it, rename it over `path`."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_bytes(path, text.encode("utf-8"))


def check_writable_dir(folder: Path, what: str) -> None:
    """Raise OutputError unless `folder` exists, is a folder, and a file can be created in it.

    The last is tested by creating and removing a file, so it holds for root too (a
    read-only file system, a path through a regular file, a full inode table).
    """
    folder = Path(folder)
    shown = folder if str(folder) else Path(".")
    if not folder.exists():
        for parent in folder.parents:
            if parent.exists() and not parent.is_dir():
                raise OutputError(f"{what}: cannot write in {shown}: {parent} is a file, not a folder")
        raise OutputError(f"{what}: the output folder {shown} does not exist (create it first)")
    if not folder.is_dir():
        raise OutputError(f"{what}: cannot write in {shown}: it is a file, not a folder")
    try:
        probe = temp_path(folder / ".mirage-write-check")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"{what}: the output folder {shown} is not writable: creating a file in it failed "
                          f"({e.strerror or e})") from None


def check_output_file(path: Path, what: str, overwrite: bool) -> None:
    """An output file's folder must be writable; an existing file is refused unless overwrite."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what}: {path} is a folder; give a file name")
    check_writable_dir(path.parent, what)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{what}: {path} already exists; pass --overwrite to replace it")
