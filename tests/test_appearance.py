"""The class appearance groups (issue "World model v2", the step after the layout decoder): per
material class, the look of that class in the previous frame and the memory, spread over the
target view by its layout. Checked on hand-made cells, then a tiny model fine-tuned with them
runs in a real session with the real layout renderer and exports to ONNX."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.model_fixtures import fine_tune_tiny, tiny_model_dir  # noqa: F401 - fixtures


def _shares(classes: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Class index per cell (B, S, S) -> one-hot shares (B, K, S, S)."""
    return torch.nn.functional.one_hot(classes, k).permute(0, 3, 1, 2).float()


def test_each_class_takes_the_look_of_its_own_cells():
    from engine.model.conditioning import class_appearance

    c, s = 3, 4
    floor, wall = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-1.0, 0.0, 5.0])
    # Source: the top half wall, the bottom half floor.
    src_cls = torch.ones(1, s, s, dtype=torch.long)
    src_cls[:, s // 2:] = 0
    z = torch.where(src_cls[:, None] == 0, floor[None, :, None, None], wall[None, :, None, None])
    z = z + 0.01 * torch.randn(1, c, s, s)
    # Target: the left half floor, the right half wall, one cell ceiling (class 2, never seen).
    tgt_cls = torch.zeros(1, s, s, dtype=torch.long)
    tgt_cls[:, :, s // 2:] = 1
    tgt_cls[0, 0, 0] = 2
    look, have = class_appearance([(z, _shares(src_cls))], _shares(tgt_cls))
    assert look.shape == (1, c, s, s) and have.shape == (1, 1, s, s)
    assert torch.allclose(look[0, :, 1, 0], floor, atol=0.02)
    assert torch.allclose(look[0, :, 2, 3], wall, atol=0.02)
    # The unseen class has no look and says so.
    assert have[0, 0, 0, 0] == 0 and torch.equal(look[0, :, 0, 0], torch.zeros(c))
    assert (have.flatten()[1:] == 1).all()


def test_canvas_cells_count_only_where_memory_covers_the_view():
    from engine.model.conditioning import appearance_of

    c, s = 2, 4
    layout = torch.zeros(1, 9, s, s)
    layout[:, 4] = 1.0                        # the whole view is floor
    canvas = torch.full((1, c, s, s), 7.0)
    canvas[..., :2] = 100.0                   # junk where memory shows nothing
    mask = torch.zeros(1, 1, s, s)
    mask[..., 2:] = 1.0
    look, have = appearance_of(None, None, canvas, mask, layout)
    assert torch.allclose(look, torch.full_like(look, 7.0)) and (have == 1).all()
    # Layout off: no class is known, so nothing is spread.
    look, have = appearance_of(None, None, canvas, mask, torch.zeros_like(layout))
    assert not look.any() and not have.any()
    # The previous frame counts by its own view's classes.
    prev = torch.full((1, c, s, s), 1.0)
    look, _ = appearance_of(prev, layout, canvas, torch.zeros_like(mask), layout)
    assert torch.allclose(look, torch.ones_like(look))


def test_appearance_refused_without_the_layout():
    from engine.model.conditioning import cond_channels
    from engine.model.config import ModelConfig

    with pytest.raises(ValueError, match="appearance"):
        cond_channels(4, 0, appearance=True)
    d = ModelConfig().to_dict()
    d["generator"].update(layout_channels=0, appearance=True)
    with pytest.raises(ValueError, match="generator.appearance"):
        ModelConfig.from_dict(d)


@pytest.mark.usefixtures("egl")
def test_a_generator_given_appearance_starts_as_it_was_and_runs_everywhere(tiny_model_dir, tmp_path):  # noqa: F811
    from engine.backends.onnx_export import export_onnx
    from engine.backends.ort_backend import OnnxRuntimeBackend, network_parity
    from engine.model.layout_cells import SceneLayout
    from engine.model.world_model import WorldModel
    from engine.session import WorldSession
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level

    out = fine_tune_tiny(tiny_model_dir, tmp_path / "look", appearance="on", lr=0.0)
    assert json.loads((out / "config.json").read_text())["generator"]["appearance"] is True
    model, base = WorldModel.load(out), WorldModel.load(tiny_model_dir)
    assert model.takes_appearance and not base.takes_appearance
    # At learning rate 0 the added input is still zero: the same frames as the model it came from.
    seed = 1_000_004
    size = model.image_size
    poses = make_trajectory(seed, "explore", frames=5, resolution=(size, size)).frames
    scene = SceneLayout.for_model(generate_level(seed), model)
    try:
        a = WorldSession(model, memory=True, steps=1, seed=0, layout=scene)
        b = WorldSession(base, memory=True, steps=1, seed=0, layout=scene)
        for p in poses:
            fa, fb = a.step(p), b.step(p)
            assert np.array_equal(fa.frame, fb.frame)
        # Trained a few steps at a real rate, the appearance input moves and a session runs on it,
        # on onnxruntime too, with the same conditioning width as torch.
        trained = WorldModel.load(fine_tune_tiny(tiny_model_dir, tmp_path / "look2", appearance="on",
                                                 appearance_lr_mult=10.0))
        assert trained.gen.look.weight.abs().sum() > 0
        export_onnx(trained, tmp_path / "onnx")
        worst = network_parity(trained, tmp_path / "onnx")
        assert max(worst.values()) < 1e-3, worst
        frames = {}
        for name in ("torch", "onnxruntime"):
            backend = OnnxRuntimeBackend(trained, tmp_path / "onnx") if name == "onnxruntime" else "torch"
            s = WorldSession(trained, memory=True, steps=1, seed=0, layout=scene, backend=backend)
            frames[name] = np.stack([s.step(p).frame for p in poses]).astype(np.float32)
        assert np.abs(frames["torch"] - frames["onnxruntime"]).max() <= 2.0
    finally:
        scene.close()


def test_appearance_stays_what_the_run_was_built_with(tiny_model_dir, tmp_path):  # noqa: F811
    from engine.train.world import WorldTrainArgs, train_world

    out = fine_tune_tiny(tiny_model_dir, tmp_path / "run", appearance="on").parent
    with pytest.raises(ValueError, match="appearance"):
        train_world(WorldTrainArgs(autoencoder=str(tiny_model_dir.parent.parent / "ae"), out=str(out), steps=5,
                                   batch=4, seeds=(5, 6), appearance="off"), progress=False)
