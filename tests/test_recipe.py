"""`mirage train recipe`: a checked-in recipe runs its stages through the real `mirage` entry
point, in order, stops at the first failure and resumes; `mirage train configure` changes how a
model runs without touching what its weights were trained as."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture)

from engine.model.world_model import WorldModel
from engine.train.checkpoint import run_args
from explorer.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _recipe(path: Path, stages: list[tuple[str, list[str]]]) -> Path:
    path.write_text(json.dumps({"format": "mirage-recipe/1", "name": "tiny",
                                "stages": [{"name": n, "note": n, "command": c} for n, c in stages]}))
    return path


def test_shipped_recipe_is_valid_and_names_every_stage(capsys):
    recipe = ROOT / "assets" / "recipes" / "v2.json"
    assert main(["train", "recipe", str(recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("== v2 / ") == len(json.loads(recipe.read_text())["stages"])
    # v1's stages come first (v2 starts from v1's weights), the shipped model's last step closes it.
    assert "mirage train average --models runs/v2/dec14/model runs/v2/advc/model" in out
    assert "mirage train configure --model runs/v2/v2dec5/model inference.steps=1" in out
    assert "mirage train decoder --model runs/v2/rl2-900 --out runs/v2/rl4 --steps 600" in out
    assert "mirage train texture --model runs/v2/rl4/model --out runs/v2/tex1 --steps 2000" in out
    assert "mirage train look-prior --model runs/v2/tex1/model --out runs/v2/v2.2" in out
    assert "mirage train texture --model runs/v2/v2.2 --out runs/v2/tex2 --steps 2000" in out
    assert "mirage train texture --part refine --refine-width 8 --model runs/v2/lp2 --out runs/v2/ref3" in out
    assert "mirage train texture --model runs/v2/ref4/model --out runs/v2/tex4 --steps 1200 --energy-weight 2" in out
    assert "mirage train texture --part refine --model runs/v2/tex4/model --out runs/v2/ref5 --steps 1000" in out
    assert ("mirage train texture --part invented --model runs/v2/ref5/model --out runs/v2/inv3 --steps 1200 "
            "--views 16 --blur 0.2 0.6 --energy-weight 4" in out.rstrip().splitlines()[-1])


def test_recipe_runs_its_stages_in_order_and_resumes(tiny_model_dir, tmp_path, capsys):  # noqa: F811
    ae = tiny_model_dir.parent.parent / "ae"
    recipe = _recipe(tmp_path / "r.json", [
        ("finetune", ["train", "world", "--autoencoder", str(ae), "--init", str(tiny_model_dir), "--out",
                      "{runs}/w", "--seeds", "5:6", "--steps", "2", "--batch", "4", "--context-blur", "0.5",
                      "--no-progress"]),
        ("average", ["train", "average", "--models", str(tiny_model_dir), "{runs}/w/model", "--out", "{runs}/avg"]),
        ("configure", ["train", "configure", "--model", "{runs}/avg", "memory.voxel_size=0.03", "inference.steps=2"]),
    ])
    runs = tmp_path / "runs"
    assert main(["train", "recipe", str(recipe), "--runs", str(runs)]) == 0
    model = WorldModel.load(runs / "avg")
    assert model.cfg.memory.voxel_size == 0.03 and model.cfg.inference.steps == 2
    assert run_args(runs / "w")["context_blur"] == 0.5     # the run's settings live with the run
    assert "context_blur" not in json.dumps(model.cfg.to_dict())
    # Run again from a stage: the finished training run resumes with nothing left to do.
    assert main(["train", "recipe", str(recipe), "--runs", str(runs), "--from", "finetune", "--until", "finetune"]) == 0
    assert len(json.loads((runs / "w" / "args.json").read_text())) == 2
    capsys.readouterr()
    broken = _recipe(tmp_path / "b.json", [("bad", ["train", "configure", "--model", "{runs}/avg", "generator.width=3"]),
                                           ("never", ["train", "configure", "--model", "{runs}/avg",
                                                      "inference.steps=3"])])
    assert main(["train", "recipe", str(broken), "--runs", str(runs)]) == 2
    out = capsys.readouterr()
    assert "stopped at stage 'bad'" in out.out and "generator.width=3" in out.err
    assert WorldModel.load(runs / "avg").cfg.inference.steps == 2   # the later stage did not run


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.update(format="other"), "format must be"),
    (lambda r: r["stages"][0].update(command=[]), "stages[0].command"),
    (lambda r: r["stages"][0].update(command=["explore"]), "runs `mirage explore`"),
    (lambda r: r["stages"].append(dict(r["stages"][0])), "stages[1].name"),
])
def test_bad_recipes_are_refused_by_field(tmp_path, capsys, edit, message):
    r = {"format": "mirage-recipe/1", "name": "x", "stages": [{"name": "a", "command": ["train", "configure"]}]}
    edit(r)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(r))
    assert main(["train", "recipe", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_configure_refuses_network_settings_and_bad_values(tiny_model_dir, tmp_path, capsys):  # noqa: F811
    import shutil

    model = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model)
    before = (model / "config.json").read_text()
    for setting, message in (("autoencoder.width=8", "SECTION.KEY=VALUE"), ("memory.capacity=0", "capacity"),
                             ("inference.temperature=9", "temperature"), ("inference.steps=0", "steps")):
        assert main(["train", "configure", "--model", str(model), setting]) == 2, setting
        assert message in capsys.readouterr().err, setting
    assert (model / "config.json").read_text() == before   # nothing half-applied
