"""The `mirage` command: subcommands, outputs read back, and clean errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_mirage(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
    """Run the command in a fresh interpreter (as a user would), from the repo root."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "explorer.cli", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def make_traj(tmp_path: Path, name: str = "t.json", kind: str = "explore", frames: int = 12,
              resolution: str = "64x48", seed: int = 1_000_123) -> Path:
    out = tmp_path / name
    assert main(["trajectory", "--scene-seed", str(seed), "--kind", kind, "--out", str(out),
                 "--frames", str(frames), "--resolution", resolution]) == 0
    return out


def test_import_and_trajectory_stay_light():
    code = ("import sys; from explorer.cli import main; import tempfile, os;"
            "d = tempfile.mkdtemp();"
            "rc = main(['trajectory', '--scene-seed', '3', '--kind', 'retrace', '--out', os.path.join(d, 't.json')]);"
            "heavy = [m for m in ('torch', 'PySide6', 'moderngl', 'matplotlib') if m in sys.modules];"
            "print(rc, heavy)")
    r = run_mirage(code=code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "0 []", r.stdout


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("scene", "trajectory", "render", "dataset", "bench"):
        assert name in out


def test_no_subcommand_is_exit_2(capsys):
    assert main([]) == 2


def test_scene_json_matches_level(capsys):
    from engine.world.levels import generate_level

    assert main(["scene", "--scene-seed", "7", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(json.dumps(generate_level(7).to_json()))


def test_scene_summary(capsys):
    assert main(["scene", "--scene-seed", "1000123"]) == 0
    out = capsys.readouterr().out
    assert "scene 1000123 (eval seed)" in out and "rooms" in out


def test_trajectory_file(tmp_path, capsys):
    from engine.trajectory import read_trajectory

    path = make_traj(tmp_path, kind="explore", frames=20)  # explore takes an exact frame count
    traj = read_trajectory(path)
    assert traj.scene_seed == 1_000_123 and traj.kind == "explore"
    assert len(traj.frames) == 20 and tuple(traj.resolution) == (64, 48)
    assert json.loads(path.read_text())["format"] == "mirage-trajectory/1"
    assert "wrote" in capsys.readouterr().out
    # Same path again is refused, and allowed with --overwrite.
    args = ["trajectory", "--scene-seed", "1000123", "--kind", "explore", "--out", str(path), "--frames", "20"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_render_folder_matches_renderer(tmp_path, egl):
    import cv2

    from engine.trajectory import read_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj_path = make_traj(tmp_path, frames=10)
    out = tmp_path / "frames"
    assert main(["render", "--trajectory", str(traj_path), "--out", str(out), "--quiet", "--batch", "4"]) == 0
    pngs = sorted(out.glob("frame_*.png"))
    depths = sorted(out.glob("depth_*.npy"))
    assert [p.name for p in pngs[:2]] == ["frame_00000.png", "frame_00001.png"]
    assert len(pngs) == len(depths) == 10
    traj = read_trajectory(traj_path)
    r = Renderer(generate_level(traj.scene_seed), 64, 48, traj.fov_deg)
    try:
        # Same batching as the command (--batch 4): frame 7 is the 4th pose of the second call.
        rgbs, depths_ = r.render(traj.frames[4:8])
        rgb, depth = rgbs[3], depths_[3]
    finally:
        r.close()
    img = cv2.imread(str(pngs[7]), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert img.shape == (48, 64, 3)
    np.testing.assert_array_equal(img, rgb)  # PNG is lossless
    d = np.load(depths[7])
    assert d.dtype == np.float32 and d.shape == (48, 64)
    np.testing.assert_allclose(d, depth, rtol=1e-6)
    meta = json.loads((out / "transforms.json").read_text())
    assert len(meta["frames"]) == 10 and meta["w"] == 64 and meta["h"] == 48
    assert meta["frames"][3]["depth_file_path"] == "depth_00003.npy"


def test_render_depth_png16(tmp_path, egl):
    import cv2

    traj_path = make_traj(tmp_path, frames=3)
    out = tmp_path / "frames16"
    assert main(["render", "--trajectory", str(traj_path), "--out", str(out), "--depth", "png16", "--quiet"]) == 0
    d = cv2.imread(str(out / "depth_00001.png"), cv2.IMREAD_UNCHANGED)
    assert d.dtype == np.uint16 and d.shape == (48, 64)
    assert 100 < int(np.median(d)) < 65535  # millimetres inside a room: tens of cm to tens of m


def test_render_mp4_reads_back(tmp_path, egl):
    import cv2

    traj_path = make_traj(tmp_path, frames=15)
    clip = tmp_path / "clip.mp4"
    assert main(["render", "--trajectory", str(traj_path), "--out", str(clip), "--quiet"]) == 0
    cap = cv2.VideoCapture(str(clip))
    try:
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    assert len(frames) == 15
    assert frames[0].shape == (48, 64, 3)
    assert not list(tmp_path.glob(".*partial*"))  # the temporary file was renamed away


def test_render_refuses_existing_output(tmp_path, capsys, egl):
    traj_path = make_traj(tmp_path, frames=2)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"keep me")
    assert main(["render", "--trajectory", str(traj_path), "--out", str(clip), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirage: error:") and "--overwrite" in err
    assert clip.read_bytes() == b"keep me"
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "something.txt").write_text("x")
    assert main(["render", "--trajectory", str(traj_path), "--out", str(folder), "--quiet"]) == 2
    assert main(["render", "--trajectory", str(traj_path), "--out", str(clip), "--quiet", "--overwrite"]) == 0
    assert clip.stat().st_size > 100


def test_missing_trajectory_is_clean_exit_2(tmp_path):
    r = run_mirage("render", "--trajectory", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.startswith("mirage: error:") and "nope.json" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_trajectory_is_clean_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else/9", "frames": []}))
    r = run_mirage("render", "--trajectory", str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("mirage: error:") and "Traceback" not in r.stderr


def test_impossible_frame_count_is_clean_exit_2(tmp_path, capsys):
    rc = main(["trajectory", "--scene-seed", "5", "--kind", "turnaround", "--frames", "12",
               "--out", str(tmp_path / "t.json")])
    assert rc == 2
    assert "turnaround" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_bad_resolution_is_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["trajectory", "--scene-seed", "1", "--kind", "retrace", "--out", "x.json", "--resolution", "big"])
    assert e.value.code == 2
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


@pytest.mark.parametrize("value, says", [("0", "(0, 3]"), ("hot", "'hot'")])
def test_bad_explore_temperature_is_usage_error(capsys, value, says):
    with pytest.raises(SystemExit) as e:
        main(["explore", "--temperature", value])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--temperature" in err and says in err


def test_dataset_refuses_eval_seeds(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["dataset", "--seeds", "999998:1000002", "--frames-per-scene", "4", "--out", str(out), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "evaluation" in err and "--allow-eval-seeds" in err
    assert not out.exists()


def test_dataset_command_writes_manifest(tmp_path, egl):
    from engine.train.data import read_manifest

    out = tmp_path / "ds"
    assert main(["dataset", "--seeds", "10:12", "--frames-per-scene", "4", "--out", str(out),
                 "--resolution", "32x32", "--quiet"]) == 0
    m = read_manifest(out)
    assert m["frames"] == 8 and m["resolution"] == [32, 32]
    assert main(["dataset", "--seeds", "10:12", "--frames-per-scene", "4", "--out", str(out), "--quiet"]) == 2


def test_bench_render_json(tmp_path, capsys, egl):
    out = tmp_path / "bench.json"
    assert main(["bench", "--render", "--no-step", "--no-memory-bench", "--frames", "8", "--batch", "1,4", "--resolution", "32x32",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())["render"]
    assert [r["batch"] for r in res["results"]] == [1, 4]
    assert all(r["fps"] > 0 and r["frames"] == 8 for r in res["results"])
    assert "frames/s" in capsys.readouterr().out


def test_bench_needs_a_target(capsys):
    assert main(["bench", "--no-step", "--no-memory-bench"]) == 2
    assert "--render" in capsys.readouterr().err


def test_broken_plugin_subcommand_does_not_break_the_rest(monkeypatch, capsys):
    import explorer.cli as cli

    monkeypatch.setitem(cli.SUBCOMMANDS, "ghost", "explorer.no_such_module:register")
    assert main(["ghost", "--anything"]) == 2
    assert "'ghost' is unavailable" in capsys.readouterr().err
    assert main(["scene", "--scene-seed", "1"]) == 0


def test_train_autoencoder_runs_from_the_command_line(tmp_path, egl, capsys):
    """`mirage train autoencoder` end to end, one step of the tiny config on real rendered frames: its
    handler builds its own arguments (an edit meant for another subcommand once broke it)."""
    assert main(["train", "autoencoder", "--out", str(tmp_path / "ae"), "--steps", "1", "--batch", "2",
                 "--config", "tiny", "--seeds", "5:6", "--no-progress"]) == 0
    assert "autoencoder checkpoint in" in capsys.readouterr().out
    assert (tmp_path / "ae" / "state.json").is_file()
