"""The decoder told a latent's source (AutoencoderConfig.decoder_source): added to a trained model
it starts out decoding exactly as before; trained, it decodes generated and encoder latents
differently; WorldSession and every backend hand it the right source."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.model.autoencoder import Autoencoder, add_source_input
from engine.model.config import ModelConfig
from engine.model.world_model import WorldModel
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture)


@pytest.fixture(scope="module")
def source_model_dir(tiny_model_dir, tmp_path_factory):
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("decoder_source") / "dec"
    return train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(out), steps=6, batch=4, gan_start=2,
                                          save_every=6, source_input=True, adv_generated=1.5), progress=False)


def test_added_source_input_starts_as_the_old_decoder(tiny_model_dir):
    cfg = ModelConfig.load(tiny_model_dir / "config.json")
    old = Autoencoder(cfg.autoencoder).eval()
    state = load_file(str(tiny_model_dir / "autoencoder.safetensors"))
    old.load_state_dict(state)
    cfg.autoencoder.decoder_source = True
    new = Autoencoder(cfg.autoencoder).eval()
    new.load_state_dict(add_source_input(state))
    z = torch.randn(3, cfg.autoencoder.latent_channels, cfg.autoencoder.latent_size, cfg.autoencoder.latent_size)
    with torch.no_grad():
        ref = old.decode(z)[0]
        for source in (0.0, 1.0, torch.tensor([0.0, 1.0, 1.0])):
            assert torch.allclose(new.decode(z, source)[0], ref, atol=1e-6)


def test_trained_source_decoder_keeps_the_latent_space_and_uses_the_source(tiny_model_dir, source_model_dir):
    before, after = WorldModel.load(tiny_model_dir), WorldModel.load(source_model_dir)
    assert after.cfg.autoencoder.decoder_source and not before.cfg.autoencoder.decoder_source
    for k, v in before.ae.encoder.state_dict().items():
        assert torch.equal(v, after.ae.encoder.state_dict()[k])
    for k, v in before.gen.state_dict().items():
        assert torch.equal(v, after.gen.state_dict()[k])
    z = torch.randn(2, after.latent_channels, after.cells, after.cells, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        real, gen = after.decode(z, False)[0], after.decode(z, True)[0]
        mixed = after.decode(z, torch.tensor([False, True]))[0]
    assert float((real - gen).abs().max()) > 1e-4          # six steps moved the source channel's weights
    assert torch.equal(mixed[0], real[0]) and torch.equal(mixed[1], gen[1])


def test_session_decodes_generated_frames_as_generated(source_model_dir, egl, eval_seed):
    from engine.model.autoencoder import to_uint8_image
    from engine.session import WorldSession
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    model = WorldModel.load(source_model_dir)
    size = model.image_size
    traj = make_trajectory(eval_seed, "explore", frames=2, fov_deg=model.cfg.fov_deg, resolution=(size, size))
    r = Renderer(generate_level(eval_seed), size, size, traj.fov_deg)
    rgb, depth = r.render(traj.frames[:1])
    r.close()
    s = WorldSession(model, memory=True, seed=3)
    obs = s.observe(rgb[0], traj.frames[0], depth[0])
    next_pose = traj.frames[1]
    with torch.no_grad():
        z_obs = s.last_latent
        assert np.array_equal(obs.frame, to_uint8_image(model.decode(z_obs, False)[0])[0].numpy())
        res = s.step(next_pose)
        z = s.last_latent
        shown = res.frame
        assert np.array_equal(shown, to_uint8_image(model.decode(z, True)[0])[0].numpy())
        assert not np.array_equal(shown, to_uint8_image(model.decode(z, False)[0])[0].numpy())


def test_onnxruntime_decoder_matches_torch_for_both_sources(source_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from engine.backends.onnx_export import export_onnx
    from engine.backends.ort_backend import OnnxRuntimeBackend
    from engine.backends.torch_backend import TorchBackend

    model = WorldModel.load(source_model_dir)
    export_onnx(model, tmp_path / "onnx")
    ort_b, torch_b = OnnxRuntimeBackend(model, tmp_path / "onnx"), TorchBackend(model)
    z = torch.randn(2, model.latent_channels, model.cells, model.cells, generator=torch.Generator().manual_seed(2))
    outs = {}
    for generated in (False, True):
        ref, got = torch_b.decode(z, generated)[0], ort_b.decode(z, generated)[0]
        assert float((ref - got).abs().max()) <= 1e-3
        outs[generated] = got
    assert float((outs[True] - outs[False]).abs().max()) > 1e-4


def test_adv_generated_needs_the_source_input(tiny_model_dir, tmp_path):
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    with pytest.raises(ValueError, match="decoder_source"):
        train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "d"), steps=1, batch=2,
                                       adv_generated=2.0), progress=False)


def test_split_discriminators_are_checkpointed_and_resumed(tiny_model_dir, tmp_path):
    """One discriminator per source, both saved, and a resume picks both up (strict loading)."""
    import csv

    from engine.train.decoder import DecoderTrainArgs, train_decoder

    run = tmp_path / "dec"
    kw = dict(model=str(tiny_model_dir), out=str(run), batch=4, gan_start=0, save_every=2, source_input=True)
    train_decoder(DecoderTrainArgs(steps=2, **kw), progress=False)
    saved = load_file(str(run / "discriminator_generated.safetensors"))
    assert saved and load_file(str(run / "discriminator.safetensors")).keys() == saved.keys()
    train_decoder(DecoderTrainArgs(steps=4, **kw), progress=False)
    assert any(not torch.equal(v, load_file(str(run / "discriminator_generated.safetensors"))[k])
               for k, v in saved.items())
    assert [int(r["step"]) for r in csv.DictReader(open(run / "decoder_loss.csv"))] == [0]
