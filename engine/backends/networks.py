"""The three per-frame networks as stand-alone modules: what is exported to ONNX.

Each wraps a WorldModel and does exactly what WorldModel.encode / .gen / .decode do,
normalisation included, so an exported graph is a drop-in for the torch call:
latents in and out are normalised, images are [-1, 1], depth is metres. The cell
depth that WorldModel.decode also returns is a cheap reshape of the depth map and
stays in torch (engine.model.autoencoder.cell_depth), outside every backend.

fp16 variants (for TensorRT's strongly typed networks, where the ONNX types decide
the precision) keep float32 inputs and outputs and cast at the edges, so every
backend feeds and reads them the same way. The flow-time embedding stays float32:
sin(1000 * t * f) needs more than fp16's 11 bits of mantissa (at 1000 rad an fp16 step
is 0.5 rad), so only its result is cast, just before the time MLP.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from engine.model.autoencoder import decoder_layout, with_seen
from engine.model.world_model import WorldModel

# Stable names of every graph's inputs and outputs, relied on by the runtimes and by tests.
IO_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "encoder": (("rgb",), ("z",)),
    "generator": (("x_t", "t", "cond"), ("x0",)),
    "decoder": (("z",), ("rgb", "depth")),
}
# A decoder that takes the full-resolution scene layout (autoencoder.layout_channels) has it as a second input.
LAYOUT_DECODER_IO = (("z", "layout"), ("rgb", "depth"))


def io_names(model: WorldModel) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """IO_NAMES for this model's graphs: the decoder's inputs depend on whether it takes the layout."""
    return {**IO_NAMES, "decoder": LAYOUT_DECODER_IO} if model.decoder_takes_layout else dict(IO_NAMES)


class EncoderNet(nn.Module):
    def __init__(self, model: WorldModel, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.ae_encoder = model.ae.encoder
        self.shift, self.scale = float(model.cfg.latent_shift), float(model.cfg.latent_scale)
        self.dtype = dtype

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        z = self.ae_encoder(rgb.to(self.dtype))
        return ((z - self.shift) / self.scale).float()


class GeneratorNet(nn.Module):
    def __init__(self, model: WorldModel, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.gen = model.gen
        self.dtype = dtype

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.gen(x_t.to(self.dtype), t.float(), cond.to(self.dtype)).float()


class DecoderNet(nn.Module):
    def __init__(self, model: WorldModel, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.ae = model.ae
        self.shift, self.scale = float(model.cfg.latent_shift), float(model.cfg.latent_scale)
        self.dtype = dtype

    def forward(self, z: torch.Tensor, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        lay = None if layout is None else layout.to(self.dtype)
        rgb, depth = self.ae.decode((z * self.scale + self.shift).to(self.dtype), lay)
        return rgb.float(), depth.float()


def _cast_time_mlp_input(module: nn.Module, args: tuple) -> tuple:
    # Forward pre-hook on the generator's time MLP: the float32 sinusoidal embedding meets fp16 weights here.
    return (args[0].to(next(module.parameters()).dtype),)


def build_networks(model: WorldModel, fp16: bool = False) -> dict[str, nn.Module]:
    """name -> module for encoder, generator and decoder, in eval mode on the model's device.

    fp16 works on a deep copy, so the caller's model keeps its float32 weights.
    """
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        model = copy.deepcopy(model).half()
        model.gen.tmlp.register_forward_pre_hook(_cast_time_mlp_input)
    nets = {"encoder": EncoderNet(model, dtype), "generator": GeneratorNet(model, dtype),
            "decoder": DecoderNet(model, dtype)}
    return {k: v.eval() for k, v in nets.items()}


def example_inputs(model: WorldModel, batch: int = 2, device: torch.device | str = "cpu",
                   seed: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """Random inputs of the right shapes for each network (exports trace with them; parity tests run them).

    Batch 2 rather than 1 when exporting: a size-1 dimension can be specialised away by
    the tracer, and the batch axis must stay dynamic.
    """
    from engine.model.conditioning import cond_channels

    g = torch.Generator().manual_seed(seed)
    c, s, size = model.latent_channels, model.cells, model.image_size
    k = cond_channels(c, model.cfg.generator.layout_channels)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device)

    rgb = (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).to(device)
    t = torch.rand(batch, generator=g).to(device)
    decoder: tuple[torch.Tensor, ...] = (r(batch, c, s, s),)
    if model.decoder_takes_layout:
        a = model.cfg.autoencoder
        layout = example_layout(batch, size, g, a.layout_channels)
        if a.invented_field:   # the provenance channel: a share in [0, 1]
            layout = with_seen(layout, torch.rand(batch, 1, size, size, generator=g))
        decoder += (layout.to(device),)
    return {"encoder": (rgb,), "generator": (r(batch, c, s, s), t, r(batch, k, s, s)), "decoder": decoder}


def decoder_args(model: WorldModel, z: torch.Tensor, layout: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """The decoder graph's inputs, in io_names order: z alone, or for a decoder that takes the
    layout z and the layout, all zero for layout off (None), as WorldModel.decode reads None."""
    if not model.decoder_takes_layout:
        return (z,)
    return (z, decoder_layout(model.cfg.autoencoder, z, layout).contiguous())


def example_layout(batch: int, size: int, g: torch.Generator, channels: int = 9) -> torch.Tensor:
    """A random full-resolution layout (batch, channels, size, size) shaped like a real one: log depth,
    unit normals, one class per pixel (some pixels with none), so the decoder's depth switch is
    exercised, and for 25 channels sines and cosines of random surface coordinates."""
    logd = torch.rand(batch, 1, size, size, generator=g) * 3 - 1
    normal = torch.nn.functional.normalize(torch.randn(batch, 3, size, size, generator=g), dim=1)
    cls = torch.randint(0, 6, (batch, 1, size, size), generator=g)
    onehot = torch.zeros(batch, 6, size, size).scatter_(1, cls, 1.0)[:, :5]
    drawn = onehot.sum(1, keepdim=True)
    parts = [logd * drawn, normal * drawn, onehot]
    uv = torch.rand(batch, 2, size, size, generator=g) * 20
    while sum(p.shape[1] for p in parts) < channels:
        parts += [torch.sin(uv) * drawn, torch.cos(uv) * drawn]
        uv = uv * 2
    return torch.cat(parts, dim=1)[:, :channels]
