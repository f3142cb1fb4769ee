"""The generator's decoded-frame L1 term (`mirage train world --pixel-l1`): a real objective through
the frozen decoder, and a fine-tune with it that moves the generator only. Real tiny model, real walks."""
from __future__ import annotations

import csv

import pytest
import torch
from model_fixtures import fine_tune_tiny, refuses_share, tiny_model_dir  # noqa: F401  (fixtures)

from engine.model.world_model import WorldModel
from engine.train.pixel_loss import pixel_l1
from engine.train.world import _load_walks


def test_pixel_l1_is_zero_on_the_target_and_descends_through_the_frozen_decoder(tiny_model_dir):
    model = WorldModel.load(tiny_model_dir)
    model.ae.eval().requires_grad_(False)   # as the trainer holds it
    walks = _load_walks(tiny_model_dir.parent / "walks.safetensors")   # real encoded frames
    z = walks[0].z[:4].float()
    x0 = (z - model.cfg.latent_shift) / model.cfg.latent_scale
    assert float(pixel_l1(model, x0, x0, 4)) == pytest.approx(0.0, abs=1e-6)
    before = [p.detach().clone() for p in model.ae.decoder.parameters()]
    pred = torch.zeros_like(x0, requires_grad=True)
    opt = torch.optim.Adam([pred], lr=0.05)
    first = pixel_l1(model, pred, x0, 4).item()
    for _ in range(40):
        loss = pixel_l1(model, pred, x0, 4)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Gradients reach the prediction through the decoder: the decoded distance shrinks...
    assert pixel_l1(model, pred, x0, 4).item() < 0.7 * first
    # ... and only the first n examples count.
    assert pixel_l1(model, torch.cat([x0[:2], pred[2:]]), x0, 2).item() == pytest.approx(0.0, abs=1e-6)
    # The decoder itself is not what moved: frozen, it collects no gradient and keeps its weights.
    assert all(torch.equal(a, b) and b.grad is None for a, b in zip(before, model.ae.decoder.parameters()))


def test_fine_tune_with_pixel_l1_moves_the_generator_and_logs_the_term(tiny_model_dir, tmp_path):
    out = tmp_path / "pix"
    model_dir = fine_tune_tiny(tiny_model_dir, out, pixel_l1=1.0, pixel_batch=2)
    with open(out / "world_loss.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and float(rows[0]["pixel_l1"]) > 0
    tuned, init = WorldModel.load(model_dir), WorldModel.load(tiny_model_dir)
    with torch.no_grad():
        moved = max(float((p - q).abs().max()) for p, q in zip(tuned.gen.parameters(), init.gen.parameters()))
        same_ae = all(torch.equal(p, q) for p, q in zip(tuned.ae.parameters(), init.ae.parameters()))
    assert moved > 0 and same_ae
    assert all(torch.isfinite(p).all() for p in tuned.gen.parameters())


@pytest.mark.parametrize("option, value", [("pixel_l1", -0.5), ("pixel_batch", 0)])
def test_bad_pixel_options_are_refused_by_name(tiny_model_dir, tmp_path, option, value):
    refuses_share(tiny_model_dir, tmp_path / "x", match="--" + option.replace("_", "-"), **{option: value})


def test_pixel_l1_and_the_adversarial_term_both_train_the_generator(tiny_model_dir, tmp_path):
    """With --adv-weight and --pixel-l1 together, both terms reach the gradient: the run differs from
    the same seeded run without --pixel-l1, which itself repeats exactly (so the difference is the term)."""
    adv = {"adv_weight": 0.5, "adv_start": 0}

    def generator_after(name: str, **options) -> list[torch.Tensor]:
        return [p.detach() for p in WorldModel.load(fine_tune_tiny(tiny_model_dir, tmp_path / name, **options)
                                                    ).gen.parameters()]

    adv_only, again = generator_after("a", **adv), generator_after("b", **adv)
    both = generator_after("c", pixel_l1=1.0, pixel_batch=2, **adv)
    assert all(torch.equal(p, q) for p, q in zip(adv_only, again))
    assert max(float((p - q).abs().max()) for p, q in zip(adv_only, both)) > 0
    with open(tmp_path / "c" / "world_loss.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and float(rows[-1]["pixel_l1"]) > 0 and rows[-1]["g_adv"] != ""
