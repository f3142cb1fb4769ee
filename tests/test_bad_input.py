"""Bad input is refused before any work, by name, with exit code 2 (issue "A fresh machine opens the
window"): a device this machine lacks, eval outputs that cannot be written, training worlds passed
off as held-out, weights that do not fit their config, a memory smaller than one frame."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture)

from engine.device import resolve_device
from explorer.cli import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_device_is_refused_by_name_where_there_is_none(tiny_model_dir, capsys):  # noqa: F811
    from engine.model.world_model import WorldModel

    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"--device '{name}'"):
            resolve_device(name)
        with pytest.raises(ValueError, match="cuda"):
            WorldModel.load(tiny_model_dir, name)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu0")
    capsys.readouterr()
    assert main(["bench", "--model", str(tiny_model_dir), "--device", "cuda", "--no-memory-bench",
                 "--step-frames", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirage: error: --device 'cuda'") and "Traceback" not in err


def test_eval_checks_its_outputs_and_seeds_before_any_work(tmp_path, capsys):
    traj = tmp_path / "t.json"
    assert main(["trajectory", "--scene-seed", "7", "--kind", "turnaround", "--out", str(traj)]) == 0
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    cases = [
        (["--json", str(existing)], "already exists"),
        (["--json", str(tmp_path / "missing" / "e.json")], "does not exist"),
        (["--json", str(tmp_path / "e.json")], "training world"),     # scene 7: the model has seen it
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(["eval", "--trajectories", str(traj), *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert existing.read_text() == "{}" and not (tmp_path / "e.json").exists()


def test_eval_json_is_strict_when_every_frame_is_observed(tiny_model_dir, tmp_path, egl):  # noqa: F811
    """Nothing generated means no generated-frame metrics: null in the file, never a NaN literal."""
    from engine.trajectory import make_trajectory, trajectory_to_dict, write_trajectory

    t = make_trajectory(1_000_123, "explore", frames=4, resolution=(64, 64))
    d = trajectory_to_dict(t)
    d["observe"] = len(d["frames"])
    from engine.trajectory import trajectory_from_dict

    path = tmp_path / "all_observed.json"
    write_trajectory(trajectory_from_dict(d), path)
    out = tmp_path / "e.json"
    assert main(["eval", "--trajectories", str(path), "--model", str(tiny_model_dir), "--steps", "1",
                 "--json", str(out)]) == 0
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    summary = json.loads(text)["summary"]
    assert summary["memory_on"]["psnr_gt"] is None and summary["ae_ceiling_psnr"] is None


def test_weights_that_do_not_fit_the_config_are_named(tiny_model_dir, tmp_path):  # noqa: F811
    from engine.model.world_model import ModelFileError, WorldModel

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["generator"]["width"] = 24          # the weights were trained at 32
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match=r"generator\.safetensors: weights do not match config\.json"):
        WorldModel.load(bad)


def test_a_memory_smaller_than_one_frame_is_refused(tiny_model_dir):  # noqa: F811
    from engine.session import WorldSession

    with pytest.raises(ValueError, match="less than one frame's 64 latent cells"):
        WorldSession(tiny_model_dir, capacity=63)
    WorldSession(tiny_model_dir, capacity=64)


def test_training_refuses_a_batch_of_zero(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:   # argparse's own refusal: usage line, exit 2
        main(["train", "autoencoder", "--out", str(tmp_path / "ae"), "--batch", "0"])
    assert e.value.code == 2 and "--batch: expected a number >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "ae").exists()


def test_a_retrace_shorter_than_its_shortest_walk_is_refused(tmp_path, capsys):
    """`--frames 2` for a retrace used to write 145 frames without a word."""
    out = tmp_path / "r.json"
    assert main(["trajectory", "--scene-seed", "7", "--kind", "retrace", "--frames", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--frames 2: a retrace walk in scene 7 takes at least" in err and not out.exists()
    assert main(["trajectory", "--scene-seed", "7", "--kind", "retrace", "--frames", "301", "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["frames"]) >= 301


@pytest.mark.parametrize("field,value,words", [
    ("latent_scale", 0.0, "latent_scale must be a positive number"),
    ("latent_scale", float("nan"), "latent_scale must be a positive number"),
    ("fov_deg", float("nan"), "fov_deg must be a number of degrees"),
])
def test_corrupt_config_values_are_named(tiny_model_dir, tmp_path, field, value, words):  # noqa: F811
    """NaN compares false with everything, so a range check written as `if x < lo` let NaN through."""
    from engine.model.world_model import ModelFileError, WorldModel

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg[field] = value
    (bad / "config.json").write_text(json.dumps(cfg))   # Python writes NaN as the NaN literal
    with pytest.raises(ModelFileError, match=f"config.json: {words}"):
        WorldModel.load(bad)


def test_nan_weights_and_flipped_bytes_are_refused(tiny_model_dir, tmp_path):  # noqa: F811
    from safetensors.torch import load_file, save_file

    from engine.model.world_model import ModelFileError, WorldModel, write_checksums

    assert (tiny_model_dir / "checksums.json").is_file()   # written by every save
    flipped = tmp_path / "flipped"
    shutil.copytree(tiny_model_dir, flipped)
    raw = bytearray((flipped / "generator.safetensors").read_bytes())
    for i in range(len(raw) - 4096, len(raw)):   # 4 KB of the last tensor's bytes
        raw[i] ^= 0x5A
    (flipped / "generator.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="generator.safetensors: the file is damaged"):
        WorldModel.load(flipped)
    nan = tmp_path / "nan"
    shutil.copytree(tiny_model_dir, nan)
    state = load_file(str(nan / "generator.safetensors"))
    state["out.bias"][0] = float("nan")
    save_file(state, str(nan / "generator.safetensors"))
    write_checksums(nan)   # the checksum agrees: the values themselves are refused
    with pytest.raises(ModelFileError, match="tensor 'out.bias' holds NaN"):
        WorldModel.load(nan)


def test_an_unwritable_output_is_named_without_a_traceback(capsys):
    """OSError (an unwritable folder, a full disk) used to end in a traceback from main()."""
    assert main(["trajectory", "--scene-seed", "7", "--kind", "turnaround", "--out", "/proc/mirage.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mirage: error: ") and "mirage.json" in err and "Traceback" not in err


def test_trajectory_size_is_capped_before_it_costs_memory(tmp_path, capsys):
    from engine.trajectory import TrajectoryError, read_trajectory

    with pytest.raises(TrajectoryError, match="larger than 32 MB"):
        read_trajectory("/dev/zero")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(TrajectoryError, match="nested too deeply"):
        read_trajectory(deep)
    assert main(["trajectory", "--scene-seed", "7", "--kind", "explore", "--frames", "100000000",
                 "--out", str(tmp_path / "t.json")]) == 2
    assert "at most 100,000 frames" in capsys.readouterr().err


def test_renderer_pool_is_sized_by_memory():
    from engine.world.renderer import pool_size

    assert pool_size(128, 128) == 64 and pool_size(4096, 4096) == 1 and 1 < pool_size(1024, 1024) < 64


def test_explore_checks_its_outputs_before_the_window_opens(tmp_path, capsys, monkeypatch):
    """`explore --record` used to replace an existing clip, and its trajectory files, without a word."""
    from explorer.recorder import trajectory_paths

    rec = tmp_path / "rec.mp4"
    rec.write_bytes(b"an earlier walk")
    assert main(["explore", "--record", str(rec)]) == 2
    assert "--record" in capsys.readouterr().err and rec.read_bytes() == b"an earlier walk"
    rec.unlink()
    trajectory_paths(rec)[1].write_text("frame,x\n")       # only the CSV is there: still refused
    assert main(["explore", "--record", str(rec)]) == 2
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"png")
    assert main(["explore", "--screenshot", str(shot)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    # Headless without an autopilot nothing moves the camera: one frame, then a wait forever.
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["explore", "--max-frames", "5"]) == 2
    assert "nothing would move the camera" in capsys.readouterr().err


def test_scene_seeds_beyond_what_the_seed_box_holds_are_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["scene", "--scene-seed", str(2**31)])
    assert e.value.code == 2 and "from 0 to 2,147,483,647" in capsys.readouterr().err


def test_a_field_of_view_of_nan_or_zero_is_refused(tmp_path, capsys):
    for bad in ("nan", "0"):
        with pytest.raises(SystemExit) as e:
            main(["dataset", "--seeds", "0:1", "--frames-per-scene", "2", "--out", str(tmp_path / "d"), "--fov", bad])
        assert e.value.code == 2 and "field of view" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_camera_heights_outside_every_level_and_fps_below_one_are_refused(tmp_path):
    from engine.trajectory import (
        TrajectoryError,
        make_trajectory,
        read_trajectory,
        trajectory_to_dict,
    )

    d = trajectory_to_dict(make_trajectory(7, "turnaround", resolution=(64, 64)))
    for y in (5.0, -1.0):   # above the roof, under the floor: black frames with exit 0 before
        bad = json.loads(json.dumps(d))
        bad["frames"][3]["position"][1] = y
        (tmp_path / "t.json").write_text(json.dumps(bad))
        with pytest.raises(TrajectoryError, match=r"frames\[3\]\.position\[1\]"):
            read_trajectory(tmp_path / "t.json")
    slow = dict(d, fps=0.001)   # the encoders refuse such a clip only after the whole walk
    (tmp_path / "t.json").write_text(json.dumps(slow))
    with pytest.raises(TrajectoryError, match="fps"):
        read_trajectory(tmp_path / "t.json")
