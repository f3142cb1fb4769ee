"""A decoder grown by residual blocks (AutoencoderConfig.decoder_extra_blocks, `mirage train decoder
--grow-blocks`): grown from a trained model it starts out decoding exactly as before; trained, it
keeps the latent space (encoder and generator untouched), saves a config that rebuilds it, resumes,
and runs the same in onnxruntime as in torch."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture)
from safetensors.torch import load_file

from engine.model.autoencoder import Autoencoder, grow_decoder
from engine.model.config import ModelConfig
from engine.model.world_model import WorldModel


@pytest.fixture(scope="module")
def grown_model_dir(tiny_model_dir, tmp_path_factory):
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("decoder_grow") / "dec"
    return train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(out), steps=6, batch=4, gan_start=2,
                                          save_every=3, grow_blocks=2), progress=False)


def _latents(cfg, n: int = 3, seed: int = 1) -> torch.Tensor:
    a = cfg.autoencoder
    return torch.randn(n, a.latent_channels, a.latent_size, a.latent_size, generator=torch.Generator().manual_seed(seed))


def test_grown_decoder_starts_as_the_old_one(tiny_model_dir):
    cfg = ModelConfig.load(tiny_model_dir / "config.json")
    state = load_file(str(tiny_model_dir / "autoencoder.safetensors"))
    old = Autoencoder(cfg.autoencoder).eval()
    old.load_state_dict(state)
    z = _latents(cfg)
    with torch.no_grad():
        ref_rgb, ref_depth = old.decode(z)
    grown_cfg = cfg.autoencoder
    for extra in (1, 3):
        bigger = dataclasses.replace(grown_cfg, decoder_extra_blocks=grown_cfg.decoder_extra_blocks + extra)
        new = Autoencoder(bigger).eval()
        new.load_state_dict(grow_decoder(state, grown_cfg, extra, new))  # strict: every key is placed
        assert sum(p.numel() for p in new.decoder.parameters()) > sum(p.numel() for p in old.decoder.parameters())
        with torch.no_grad():
            rgb, depth = new.decode(z)
        assert torch.equal(rgb, ref_rgb) and torch.equal(depth, ref_depth)
        # Grown twice in a row, the second growth sees the first's blocks and still lands exactly.
        state, grown_cfg = new.state_dict(), bigger
    with pytest.raises(ValueError, match="at least one block"):
        grow_decoder(state, grown_cfg, 0, new)


def test_trained_grown_decoder_keeps_the_latent_space(tiny_model_dir, grown_model_dir):
    before, after = WorldModel.load(tiny_model_dir), WorldModel.load(grown_model_dir)
    assert after.cfg.autoencoder.decoder_extra_blocks == before.cfg.autoencoder.decoder_extra_blocks + 2
    for k, v in before.ae.encoder.state_dict().items():
        assert torch.equal(v, after.ae.encoder.state_dict()[k])
    for k, v in before.gen.state_dict().items():
        assert torch.equal(v, after.gen.state_dict()[k])
    z = _latents(after.cfg)
    with torch.no_grad():
        moved = float((before.decode(z)[0] - after.decode(z)[0]).abs().max())
    assert moved > 1e-4  # six steps moved the decoder, new blocks included
    new_block = after.ae.decoder.net[2 * after.cfg.autoencoder.blocks + 4 + after.cfg.autoencoder.blocks + 1]
    assert float(new_block.c2.weight.detach().abs().max()) > 0  # its zero-initialised conv has learned something


def test_grown_run_resumes(tiny_model_dir, grown_model_dir, tmp_path):
    """A resume grows the source model again and then loads the checkpoint: same architecture, strict load."""
    import shutil

    from engine.train.decoder import DecoderTrainArgs, train_decoder

    run = tmp_path / "dec"
    shutil.copytree(grown_model_dir.parent, run)
    train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(run), steps=8, batch=4, gan_start=2,
                                   save_every=4, grow_blocks=2), progress=False)
    assert ModelConfig.load(run / "config.json").autoencoder.decoder_extra_blocks == 2
    assert json.loads((run / "state.json").read_text())["step"] == 8


def test_negative_growth_is_refused(tiny_model_dir, tmp_path):
    from engine.train.decoder import DecoderTrainArgs, train_decoder

    with pytest.raises(ValueError, match="--grow-blocks"):
        train_decoder(DecoderTrainArgs(model=str(tiny_model_dir), out=str(tmp_path / "d"), steps=1, batch=2,
                                       grow_blocks=-1), progress=False)


def test_onnxruntime_runs_the_grown_decoder_as_torch_does(grown_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from engine.backends.onnx_export import export_onnx
    from engine.backends.ort_backend import OnnxRuntimeBackend
    from engine.backends.torch_backend import TorchBackend

    model = WorldModel.load(grown_model_dir)
    export_onnx(model, tmp_path / "onnx")
    ort_b, torch_b = OnnxRuntimeBackend(model, tmp_path / "onnx"), TorchBackend(model)
    z = _latents(model.cfg, n=2, seed=2)
    assert float((torch_b.decode(z)[0] - ort_b.decode(z)[0]).abs().max()) <= 1e-3
