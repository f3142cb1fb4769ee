"""export/: clips read back with OpenCV, interrupted recordings, the composer, GIFs.

Nothing here needs the world model. Interruption is real: a writer in a subprocess is
sent SIGKILL, and a full disk is a real EFBIG from a file-size limit (and a real ENOSPC
from a tiny tmpfs where this machine lets us mount one).
"""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.camera import Pose
from export.compose import GAP, compose_panes, layout
from export.gif import GifWriter, clip_to_gif
from export.journal import journal_fps
from export.video import (
    CodecUnavailable,
    VideoWriter,
    finish_partial,
    journal_path,
    read_journal_frames,
)

REPO = Path(__file__).resolve().parents[1]


def pattern(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """Frame i: a flat colour that names i, and a bar whose place moves with i."""
    f = np.empty((h, w, 3), np.uint8)
    f[:] = ((i * 37) % 200 + 30, (i * 91 + 50) % 200 + 30, (i * 53 + 120) % 200 + 30)
    x = (i * 5) % (w - 8)
    f[:, x:x + 8] = 255
    return f


def which_pattern(frame: np.ndarray, n: int) -> int:
    """Index of the pattern a decoded frame is closest to."""
    errs = [np.abs(frame.astype(np.int16) - pattern(i, frame.shape[1], frame.shape[0])).mean() for i in range(n)]
    return int(np.argmin(errs))


def read_clip(path: Path) -> tuple[list[np.ndarray], float, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(bgr[..., ::-1])
    cap.release()
    return frames, count, size


def child(code: str, *args: str, preexec=None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    prelude = "import sys, json, time\nimport numpy as np\n" + inspect.getsource(pattern)
    return subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(code), *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)


# --------------------------------------------------------------------------- video

def test_clip_reads_back_with_opencv(tmp_path):
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, 15, (64, 48)) as vw:
        assert vw.partial_path == journal_path(out) and vw.partial_path.exists()  # recording goes to the journal
        for i in range(20):
            vw.write(pattern(i))
        assert vw.frames_written == 20
        assert not out.exists()  # the clip appears only when complete
    frames, count, size = read_clip(out)
    assert (len(frames), count, size) == (20, 20, (64, 48))
    assert [which_pattern(f, 20) for f in frames] == list(range(20))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # journal and temp files gone
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(15, abs=0.01)


def test_odd_size_is_padded_and_plays(tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 10, (63, 47)) as vw:
        for i in range(5):
            vw.write(pattern(i, 63, 47))
    frames, count, size = read_clip(out)
    assert len(frames) == 5 and size == (64, 48)


def test_h264_when_pyav_is_installed(tmp_path):
    pytest.importorskip("av")
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, 15, (64, 48), codec="h264") as vw:
        for i in range(12):
            vw.write(pattern(i))
    frames, _, size = read_clip(out)
    assert len(frames) == 12 and size == (64, 48)
    assert [which_pattern(f, 12) for f in frames] == list(range(12))


def test_h264_without_pyav_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` does where it is not installed
    with pytest.raises(CodecUnavailable, match=r"\[h264\]"):
        VideoWriter(tmp_path / "clip.mp4", 15, (64, 48), codec="h264")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_bad_frames_and_names(tmp_path):
    with pytest.raises(ValueError, match="must end in"):
        VideoWriter(tmp_path / "clip.txt", 15, (64, 48))
    with pytest.raises(ValueError, match="unknown codec"):
        VideoWriter(tmp_path / "clip.mp4", 15, (64, 48), codec="vp9")
    with VideoWriter(tmp_path / "clip.mp4", 15, (64, 48)) as vw:
        with pytest.raises(ValueError, match=r"uint8 \(48, 64, 3\)"):
            vw.write(np.zeros((48, 64, 3), np.float32))
        with pytest.raises(ValueError, match=r"uint8 \(48, 64, 3\)"):
            vw.write(np.zeros((64, 48, 3), np.uint8))
        vw.write(pattern(0))
    assert read_clip(tmp_path / "clip.mp4")[1] == 1


def test_exception_in_block_keeps_the_playable_journal(tmp_path):
    out = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 15, (64, 48)) as vw:
            for i in range(7):
                vw.write(pattern(i))
            raise RuntimeError("generation failed")
    assert not out.exists()
    frames, count, _ = read_clip(journal_path(out))
    assert len(frames) == count == 7
    # and the journal can still become the clip
    assert finish_partial(journal_path(out)) == out
    assert len(read_clip(out)[0]) == 7


def test_journal_keeps_its_frame_rate_and_refuses_other_files(tmp_path):
    out = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, 12.5, (64, 48)) as vw:
            vw.write(pattern(0))
            raise RuntimeError("stop")
    assert journal_fps(journal_path(out)) == pytest.approx(12.5)
    assert finish_partial(journal_path(out)) == out
    assert read_clip(out)[1] == 1
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5, abs=0.01)
    cap.release()
    junk = tmp_path / "notes.mp4.partial.avi"
    junk.write_bytes(b"not a video at all" * 20)
    with pytest.raises(ValueError, match="notes.mp4.partial.avi: not a recording journal"):
        finish_partial(junk)


def test_no_frames_leaves_nothing(tmp_path):
    vw = VideoWriter(tmp_path / "clip.mp4", 15, (64, 48))
    assert vw.close() is None
    assert list(tmp_path.iterdir()) == []


_KILL_AFTER_PAUSE = """
from export.video import VideoWriter
vw = VideoWriter(sys.argv[1], 15, (64, 48))
for i in range(12):
    vw.write(pattern(i))
print("ready", flush=True)
time.sleep(120)
"""

_KILL_WHILE_WRITING = """
from export.video import VideoWriter
vw = VideoWriter(sys.argv[1], 15, (64, 48))
i = 0
while True:
    vw.write(pattern(i % 250))
    print(i, flush=True)   # printed only once write() has returned
    i += 1
"""


def test_sigkill_mid_clip_leaves_every_frame_written(tmp_path):
    out = tmp_path / "killed.mp4"
    p = child(_KILL_AFTER_PAUSE, str(out))
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        p.send_signal(signal.SIGKILL)  # no close(), no atexit, no finally: the process just stops
    finally:
        p.wait(30)
    assert p.returncode == -signal.SIGKILL
    assert not out.exists()
    frames, count, size = read_clip(journal_path(out))  # OpenCV's FFmpeg reader, as any player would
    assert (len(frames), count, size) == (12, 12, (64, 48))
    assert [which_pattern(f, 12) for f in frames] == list(range(12))


def test_sigkill_at_a_random_moment_keeps_all_acknowledged_frames(tmp_path):
    out = tmp_path / "killed.mp4"
    p = child(_KILL_WHILE_WRITING, str(out))
    acked = -1
    try:
        while acked < 40:
            line = p.stdout.readline()
            assert line, p.stderr.read()
            acked = int(line)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(30)
    frames, _, _ = read_clip(journal_path(out))
    assert len(frames) >= acked + 1  # every frame whose write() returned, maybe a few more
    assert [which_pattern(f, 250) for f in frames] == [i % 250 for i in range(len(frames))]
    ours = list(read_journal_frames(journal_path(out)))
    assert len(ours) == len(frames)
    clip = finish_partial(journal_path(out), tmp_path / "recovered.mp4")
    assert len(read_clip(clip)[0]) == len(frames)


_FILL_UP = """
from export.video import VideoWriter, VideoWriteError
vw = VideoWriter(sys.argv[1], 15, (64, 48))
try:
    for i in range(100000):
        vw.write(pattern(i % 250))
except VideoWriteError as e:
    out = {"message": str(e), "frames": e.frames, "partial": str(e.partial), "written": vw.frames_written,
           "errno": e.errno}
    try:
        vw.close()
    except VideoWriteError as again:
        out["close"] = str(again)
    print(json.dumps(out))
"""


def _check_full(out: Path, p: subprocess.Popen, reason: str) -> int:
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    r = json.loads(stdout)
    assert r["frames"] == r["written"] > 0
    assert reason in r["message"] and str(out) in r["message"] and r["partial"] in r["message"]
    assert f"{r['frames']} frames written so far are kept, playable" in r["message"]
    assert r["close"] == r["message"]  # close() keeps the journal and says so again
    assert not out.exists()
    frames, count, _ = read_clip(Path(r["partial"]))
    assert len(frames) == count == r["frames"]
    assert [which_pattern(f, 250) for f in frames] == [i % 250 for i in range(len(frames))]
    return r["frames"]


def test_file_size_limit_mid_clip_gives_clear_error_and_playable_partial(tmp_path):
    import resource

    out = tmp_path / "full.mp4"
    limit = 40_000

    def cap_file_size():  # a real EFBIG from the kernel once the journal would pass 40 kB
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    n = _check_full(out, child(_FILL_UP, str(out), preexec=cap_file_size), "file-size limit")
    assert 5 < n < 100 and journal_path(out).stat().st_size <= limit


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str):
    """A real small file system, where this machine lets us mount one (root, mount allowed)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {r.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


def test_full_disk_mid_clip_on_a_tiny_tmpfs(tmp_path):
    with tiny_tmpfs(tmp_path / "tiny", "64k") as mnt:
        out = mnt / "full.mp4"
        _check_full(out, child(_FILL_UP, str(out)), "disk is full")


def test_full_disk_while_encoding_never_leaves_a_broken_clip(tmp_path):
    rng = np.random.default_rng(0)
    vw = VideoWriter(tmp_path / "noise.mp4", 15, (96, 64))
    for _ in range(30):  # noise: an mp4 far bigger than 16 kB
        vw.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    partial = vw.abort()  # the journal stays, as after an interrupted recording
    with tiny_tmpfs(tmp_path / "tiny", "16k") as mnt:
        with pytest.raises(OSError, match="incomplete file|No space"):
            finish_partial(partial, mnt / "clip.mp4")
        assert list(mnt.iterdir()) == []  # neither a broken clip nor a temp file
    assert len(read_clip(finish_partial(partial, tmp_path / "clip.mp4"))[0]) == 30


# --------------------------------------------------------------------------- compose

def test_layout_and_pane_placement():
    a, b, c = (np.full((48, 64, 3), v, np.uint8) for v in ((200, 0, 0), (0, 200, 0), (0, 0, 200)))
    for scale in (1, 2):
        img = compose_panes([("memory on", a), ("memory off", b), ("ground truth", c)],
                            {"frame": 3, "pose": Pose((1.0, 1.6, -2.0), 45.0), "observed": False}, scale)
        lay = layout(3, (64, 48), scale, True, ["memory on", "memory off", "ground truth"])
        assert img.shape == (lay.height, lay.width, 3) and img.dtype == np.uint8
        assert lay.width == 3 * 64 * scale + 2 * GAP
        for k, want in enumerate(((200, 0, 0), (0, 200, 0), (0, 0, 200))):
            x, y, w, h = lay.pane_rect(k)
            assert (w, h) == (64 * scale, 48 * scale) and y == lay.label_h > 0
            assert (img[y:y + h, x:x + w] == want).all()
        assert img[:lay.label_h].std() > 0                       # labels drawn
        assert img[lay.label_h + lay.pane_h:].std() > 0          # overlay drawn


def test_compose_is_deterministic_and_any_subset_works():
    rng = np.random.default_rng(1)
    f = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    ov = {"frame": 7, "pose": (1.0, 2.0, 30.0)}
    one = compose_panes([("memory on", f), ("ground truth", f)], ov)
    assert np.array_equal(one, compose_panes([("memory on", f.copy()), ("ground truth", f.copy())], dict(ov)))
    assert not np.array_equal(one, compose_panes([("memory on", f), ("ground truth", f)], {**ov, "frame": 8}))
    single = compose_panes([("memory off", f)])
    assert single.shape == (layout(1, (64, 64), 1, False).height, 64, 3)
    # the overlay bar's height never depends on the text: frames of one clip share a size
    short, long = compose_panes([("a", f)], {"frame": 1}), compose_panes([("a", f)], {"frame": 12345, **ov})
    assert short.shape == long.shape


def test_compose_resizes_mismatched_panes_and_refuses_bad_input():
    big = np.zeros((128, 128, 3), np.uint8)
    img = compose_panes([("memory on", np.zeros((64, 64, 3), np.uint8)), ("ground truth", big)])
    assert img.shape[1] == 2 * 64 + GAP
    with pytest.raises(ValueError):
        compose_panes([])
    with pytest.raises(ValueError, match="uint8"):
        compose_panes([("x", np.zeros((8, 8, 3), np.float32))])
    with pytest.raises(ValueError, match="scale"):
        compose_panes([("x", big)], scale=0)


def test_clip_keeps_the_pane_layout(tmp_path):
    colors = ((220, 40, 40), (40, 220, 40), (40, 40, 220))
    panes = [(name, np.full((64, 64, 3), c, np.uint8)) for name, c in zip(("memory on", "memory off", "ground truth"),
                                                                           colors)]
    lay = layout(3, (64, 64), 1, True, [p[0] for p in panes])
    with VideoWriter(tmp_path / "sbs.mp4", 15, lay.size) as vw:
        for i in range(6):
            vw.write(compose_panes(panes, {"frame": i, "pose": (0.0, 0.0, 0.0)}))
    frames, count, size = read_clip(tmp_path / "sbs.mp4")
    assert (len(frames), size) == (6, lay.size)
    for frame in frames:
        for k, c in enumerate(colors):
            x, y, w, h = lay.pane_rect(k)
            centre = frame[y + 8:y + h - 8, x + 8:x + w - 8].reshape(-1, 3).mean(0)
            assert np.abs(centre - c).max() < 12, (k, centre)


# --------------------------------------------------------------------------- gif

def test_gif_from_frames_and_from_a_clip(tmp_path):
    from PIL import Image

    with GifWriter(tmp_path / "a.gif", fps=10) as gw:
        for i in range(8):
            gw.write(pattern(i))
    with Image.open(tmp_path / "a.gif") as im:
        assert (im.n_frames, im.size, im.info["duration"]) == (8, (64, 48), 100)
        im.seek(5)
        assert which_pattern(np.asarray(im.convert("RGB")), 8) == 5
    with VideoWriter(tmp_path / "c.mp4", 15, (64, 48)) as vw:
        for i in range(9):
            vw.write(pattern(i))
    clip_to_gif(tmp_path / "c.mp4", tmp_path / "c.gif", every=2, max_width=32)
    with Image.open(tmp_path / "c.gif") as im:
        assert (im.n_frames, im.size) == (5, (32, 24))


def test_export_never_imports_qt():
    code = ("import sys, export.video, export.compose, export.dataset, export.gif, export.trajectory_out, "
            "export.walk; print([m for m in ('PySide6', 'PyQt5', 'PyQt6', 'torch') if m in sys.modules])")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"  # no Qt ever; and not even torch until a walk runs
