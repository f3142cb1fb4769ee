"""Early output checks shared by the exporters: refuse an output before any work starts.
Atomic writes are engine/files.py's (re-exported here for the exporters)."""
from __future__ import annotations

from pathlib import Path

from engine.files import atomic_bytes, atomic_text, temp_path

__all__ = ["OutputError", "atomic_bytes", "atomic_text", "check_output_file", "check_writable_dir", "temp_path"]


class OutputError(ValueError):
    """An output that cannot be written: a missing or unwritable folder, an existing file."""


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
