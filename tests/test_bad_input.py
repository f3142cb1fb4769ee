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
