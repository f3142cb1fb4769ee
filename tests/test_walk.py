"""`mirage walk` and export.walk on a tiny real model: the clip, the poses, the dataset, the refusals."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from model_fixtures import tiny_model_dir  # noqa: F401

from engine.trajectory import make_trajectory, read_trajectory, write_trajectory
from explorer.cli import main
from export.compose import layout
from export.video import journal_path

REPO = Path(__file__).resolve().parents[1]
FRAMES = 8


@pytest.fixture(scope="module")
def turn_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("traj") / "turn.json"
    write_trajectory(make_trajectory(1_000_123, "turnaround", resolution=(64, 64)), path)
    return path


def read_clip(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return frames
        frames.append(bgr[..., ::-1].astype(np.float32))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-9))


def test_walk_both_with_gt_writes_clip_poses_dataset_and_gif(tmp_path, tiny_model_dir, turn_json, egl):
    from PIL import Image

    from engine.model.world_model import WorldModel
    from engine.session import WorldSession
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer
    from export.dataset import read_transforms
    from export.walk import run_walk

    traj = read_trajectory(turn_json)
    s = run_walk(turn_json, tmp_path / "walk.mp4", model=tiny_model_dir, memory="both", gt=True,
                 transforms_out=tmp_path / "ds", gif=tmp_path / "walk.gif", frames=FRAMES, progress=False)
    assert s.panes == ["memory on", "memory off", "ground truth"] and s.frames == FRAMES and s.observed == 1
    lay = layout(3, (64, 64), 2, True, s.panes)  # 64 px frames are magnified twice by default
    assert s.size == lay.size
    clip = read_clip(s.outputs.clip)
    assert len(clip) == FRAMES and clip[0].shape == (lay.height, lay.width, 3)
    assert not journal_path(s.outputs.clip).exists()

    # Pane layout, checked against independent runs: pane 0 is a memory-on session, pane 1
    # memory off (same seed), pane 2 the renderer's ground truth.
    model = WorldModel.load(tiny_model_dir)
    r = Renderer(generate_level(traj.scene_seed), 64, 64, model.cfg.fov_deg)
    gt, depth = r.render(traj.frames[:FRAMES])
    r.close()
    expect = {0: [], 1: []}
    from engine.model.layout_cells import SceneLayout

    scene = SceneLayout(generate_level(traj.scene_seed), 64, model.cells, model.cfg.fov_deg)
    for k, on in ((0, True), (1, False)):   # the walk grounds frames in the layout: the tiny model takes it
        sess = WorldSession(model, memory=on, seed=0, layout=scene)
        expect[k].append(sess.observe(gt[0], traj.frames[0], depth[0]).frame)
        expect[k] += [sess.step(p).frame for p in traj.frames[1:FRAMES]]
    for i, frame in enumerate(clip):
        panes = []
        for k in range(3):
            x, y, w, h = lay.pane_rect(k)
            panes.append(cv2.resize(frame[y:y + h, x:x + w], (64, 64), interpolation=cv2.INTER_AREA))
        assert psnr(panes[2], gt[i]) > 25, i
        assert psnr(panes[0], expect[0][i]) > 25 and psnr(panes[1], expect[1][i]) > 25, i
        if i >= 1:  # generated panes are the model's, never the renderer's
            assert psnr(panes[0], gt[i]) < psnr(panes[2], gt[i]) - 3

    # the walked poses, exactly
    walked = read_trajectory(s.outputs.trajectory)
    assert walked.frames == traj.frames[:FRAMES] and walked.observe == 1 and walked.scene_seed == traj.scene_seed
    rows = s.outputs.csv.read_text().splitlines()
    assert rows[0] == "index,x,y,z,yaw,pitch,observed" and len(rows) == FRAMES + 1
    assert rows[1].endswith(",1") and rows[2].endswith(",0")

    # the memory-on session's frames as a dataset, importable back
    data = json.loads((tmp_path / "ds" / "transforms.json").read_text())
    assert len(data["frames"]) == FRAMES and data["mirage"]["session"] == "memory on"
    img = cv2.imread(str(tmp_path / "ds" / data["frames"][3]["file_path"]))[..., ::-1]
    assert np.array_equal(img, expect[0][3])  # PNG: lossless, the session's own frame
    assert np.load(tmp_path / "ds" / data["frames"][3]["depth_file_path"]).shape == (64, 64)
    back = read_transforms(tmp_path / "ds")
    assert all(np.allclose(a.c2w(), b.c2w(), atol=1e-12) for a, b in zip(back.frames, traj.frames))

    with Image.open(tmp_path / "walk.gif") as im:
        assert (im.n_frames, im.size) == (FRAMES, lay.size)


def test_cli_walk_memory_on_only_and_from_a_transforms_json(tmp_path, tiny_model_dir, turn_json, egl, capsys):
    out = tmp_path / "on.mp4"
    assert main(["walk", "--trajectory", str(turn_json), "--memory", "on", "--out", str(out), "--model",
                 str(tiny_model_dir), "--frames", "5", "--scale", "1", "--quiet", "--transforms-out",
                 str(tmp_path / "ds")]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "on.trajectory.json" in printed and "transforms.json" in printed
    clip = read_clip(out)
    assert len(clip) == 5 and clip[0].shape[1] == 64  # one pane
    # a dataset walks again: transforms.json imported as the trajectory
    again = tmp_path / "again.mp4"
    assert main(["walk", "--trajectory", str(tmp_path / "ds"), "--memory", "off", "--out", str(again),
                 "--model", str(tiny_model_dir), "--quiet"]) == 0
    assert len(read_clip(again)) == 5
    a = read_trajectory(out.with_name("on.trajectory.json"))
    b = read_trajectory(again.with_name("again.trajectory.json"))
    assert all(np.allclose(p.c2w(), q.c2w(), atol=1e-12) for p, q in zip(a.frames, b.frames))


# --------------------------------------------------------------------------- refusals

def walk(tmp_path: Path, turn_json: Path, out, *extra: str, model: str | None = None) -> list[str]:
    # A model folder that does not exist: if the output error is what comes back, it was
    # reported before the model was loaded, let alone any frame generated.
    return ["walk", "--trajectory", str(turn_json), "--out", str(out), "--model",
            model or str(tmp_path / "no-model-here"), "--quiet", *extra]


def refused(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirage: error: "), err
    for n in needles:
        assert n in err, err
    return err


def test_refuses_a_missing_output_folder(tmp_path, turn_json, capsys):
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "nope" / "clip.mp4"), "nope", "does not exist")
    assert not (tmp_path / "nope").exists()


def test_refuses_an_unwritable_output_folder(tmp_path, turn_json, capsys):
    # Unwritable even for root: a "folder" that is a regular file, and /proc.
    (tmp_path / "afile").write_text("x")
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "afile" / "clip.mp4"), "afile", "is a file, not a folder")
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "afile" / "deeper" / "clip.mp4"), "is a file, not a folder")
    if os.path.isdir("/proc/self"):
        refused(capsys, walk(tmp_path, turn_json, "/proc/clip.mp4"), "/proc", "not writable")
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "c.mp4", "--transforms-out", str(tmp_path / "afile")),
            "--transforms-out", "is a file")
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "c.mp4", "--gif", str(tmp_path / "afile" / "a.gif")),
            "--gif", "is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing started


def test_refuses_existing_outputs_without_overwrite(tmp_path, turn_json, capsys):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"old")
    refused(capsys, walk(tmp_path, turn_json, clip), str(clip), "already exists", "--overwrite")
    clip.unlink()
    clip.with_name("clip.trajectory.json").write_text("{}")
    refused(capsys, walk(tmp_path, turn_json, clip), "clip.trajectory.json", "already exists")
    clip.with_name("clip.trajectory.json").unlink()
    journal_path(clip).write_bytes(b"RIFF")
    refused(capsys, walk(tmp_path, turn_json, clip), "interrupted recording", "--overwrite")
    journal_path(clip).unlink()
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "x.png").write_bytes(b"")
    refused(capsys, walk(tmp_path, turn_json, clip, "--transforms-out", str(tmp_path / "ds")), "not empty")
    (tmp_path / "a.gif").write_bytes(b"")
    refused(capsys, walk(tmp_path, turn_json, clip, "--gif", str(tmp_path / "a.gif")), "a.gif", "already exists")
    # with --overwrite the outputs are fine, and the next thing checked is the model
    refused(capsys, walk(tmp_path, turn_json, clip, "--gif", str(tmp_path / "a.gif"), "--overwrite"),
            "no-model-here")


def test_refuses_bad_names_and_inputs(tmp_path, turn_json, capsys, monkeypatch):
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "clip.txt"), "must end in one of")
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "c.mp4", "--gif", str(tmp_path / "a.png")), "end in .gif")
    (tmp_path / "dir.mp4").mkdir()
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "dir.mp4"), "is a folder")
    refused(capsys, walk(tmp_path, tmp_path / "missing.json", tmp_path / "c.mp4"), "missing.json", "does not exist")
    monkeypatch.setitem(sys.modules, "av", None)  # as where PyAV is not installed
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "c.mp4", "--codec", "h264"), "[h264]", "mp4v")
    refused(capsys, walk(tmp_path, turn_json, tmp_path / "c.mp4", "--temperature", "0"), "temperature", "(0, 3]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.mp4"]


def test_fov_mismatch_is_refused(tmp_path, tiny_model_dir, capsys):
    t = tmp_path / "wide.json"
    write_trajectory(make_trajectory(1_000_123, "turnaround", fov_deg=90, resolution=(64, 64)), t)
    refused(capsys, walk(tmp_path, t, tmp_path / "c.mp4", model=str(tiny_model_dir)), "field of view", "--fov 70")


def test_full_disk_mid_clip_is_a_clear_error_with_a_playable_partial(tmp_path, tiny_model_dir, turn_json, egl):
    import resource

    limit = 200_000  # bytes: a real EFBIG from the kernel a few frames into the clip

    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "full.mp4"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "explorer.cli", "walk", "--trajectory", str(turn_json), "--memory",
                        "both", "--gt", "--out", str(out), "--model", str(tiny_model_dir), "--quiet"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300, preexec_fn=cap_file_size)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("mirage: error: writing ") and str(out) in err and "file-size limit" in err, err
    partial = journal_path(out)
    assert str(partial) in err and not out.exists()
    n = int(err.split(" failed after ")[1].split()[0])
    assert 0 < n < 121
    assert len(read_clip(partial)) == n  # playable, every frame written before the failure


def test_missing_default_model_says_to_pass_model(tmp_path, turn_json, capsys):
    from engine.model.world_model import DEFAULT_MODEL_DIR

    if (DEFAULT_MODEL_DIR / "config.json").is_file():
        pytest.skip("the default model is installed here")
    refused(capsys, ["walk", "--trajectory", str(turn_json), "--out", str(tmp_path / "c.mp4"), "--quiet"],
            "default model", "--model DIR")
    assert list(tmp_path.iterdir()) == []


def test_walk_that_observes_nothing_is_all_generated_from_the_layout(tmp_path, tiny_model_dir, egl, capsys):
    from export.dataset import read_transforms

    t = make_trajectory(1_000_123, "explore", frames=6, resolution=(64, 64))
    t.observe = 0
    write_trajectory(t, tmp_path / "blind.json")
    args = ["walk", "--trajectory", str(tmp_path / "blind.json"), "--model", str(tiny_model_dir), "--quiet",
            "--memory", "on", "--transforms-out", str(tmp_path / "ds")]
    assert main(args + ["--out", str(tmp_path / "off.mp4"), "--layout", "off"]) == 2
    assert "observes no frame" in capsys.readouterr().err and not (tmp_path / "off.mp4").exists()
    assert main(args + ["--out", str(tmp_path / "on.mp4")]) == 0, capsys.readouterr().err   # auto: layout on
    assert "(0 observed, 6 generated)" in capsys.readouterr().out
    assert len(read_clip(tmp_path / "on.mp4")) == 6
    meta = json.loads((tmp_path / "ds" / "transforms.json").read_text())["mirage"]
    assert meta["layout"] == "on" and meta["observe"] == 0 and len(read_transforms(tmp_path / "ds")) == 6


def test_full_disk_in_the_dataset_names_its_file_and_keeps_the_clip(tmp_path, tiny_model_dir, turn_json, egl,
                                                                     capsys):
    """A full disk under --transforms-out (a real ENOSPC on a tiny tmpfs) used to blame the clip with
    numpy's bare short-write message; it names the dataset file, what the folder keeps, and the
    clip's playable journal, and exits 2."""
    from test_export import tiny_tmpfs

    out = tmp_path / "c.mp4"
    with tiny_tmpfs(tmp_path / "tiny", "96k") as mnt:
        rc = main(["walk", "--trajectory", str(turn_json), "--out", str(out), "--model", str(tiny_model_dir),
                   "--memory", "on", "--quiet", "--transforms-out", str(mnt / "ds"), "--frames", "40"])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert rc == 2, err
        assert err.startswith(f"mirage: error: {mnt / 'ds'}/") and "could not be written" in err, err
        kept = sorted(p.name for p in (mnt / "ds").glob("frame_*.png"))
        assert 0 < len(kept) < 40 and f"keeps the {len(kept)} frames" in err, (kept, err)
    partial = journal_path(out)
    assert str(partial) in err and not out.exists()
    assert len(read_clip(partial)) >= len(kept) - 1  # playable up to the failure
