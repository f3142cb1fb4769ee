"""An int8 decoder for ONNX Runtime on the CPU: its trunk's convolutions quantized, calibrated on rendered views.

Why. On the 2-core Intel VM the v2.3 step took 37 ms through onnxruntime, 20 of them in the
decoder, most of that in the 3x3 convolutions of its residual trunk at 16x16 and 32x32
(onnxruntime's profiler: 11.7 ms of convolutions in 13 blocks). Those convolutions quantized to
int8 (weights per output channel, activations per tensor from calibration views) run on the
CPU's integer dot-product units (VNNI where it has them): the step's decode went from 17.9 to
14.3 ms p50 there (`mirage bench --backends onnxruntime,onnxruntime-fp32`, docs/BENCHMARKS.md).
Its frames differ from float32's by 49.1 dB PSNR median, 47.0 lowest, on views of eval worlds
(`mirage export onnx --int8`'s check), and by 44.3 median, 35.4 lowest, on 102 frames the
generator made along walks of eval worlds 1,000,005-1,000,007 (a one-off script).

What is quantized, and why only that. 3x3 convolutions below the frame's resolution: the trunk.
Everything else stays float32: the layout's input convolution and the 1x1 heads (cheap), and every
full-resolution convolution (the texture field's per-pixel layers and the refiner, where int8
steps would show as banding in the frame itself). Quantizing every convolution was tried: no
faster (the decoder alone 14.2 against 13.5 ms) and 24 dB at worst. The generator stays float32
too: quantized the same way (one-off script) its output differed by 16-23 dB of its own
variance, an error its next step and memory would feed on, for 1.2 ms.

Calibration decodes views of two training worlds (never eval worlds): the encoder's latents of
rendered frames with the layout and looks a session gives an observed place. Generated latents are
smoother than encoded ones, so their activations mostly fall inside the ranges these set (the 35 dB
frame above is the exception seen). A session cannot make generated latents here:
engine/session.py builds on engine/backends.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.backends.networks import decoder_args
from engine.model.world_model import WorldModel

CALIBRATION_WORLDS = (200_000, 200_001)   # in the decoder's training range (assets/recipes/v2.json)
CALIBRATION_VIEWS = 24                    # rendered views a world
INT8_DECODER = "decoder.int8.onnx"        # its file in an export, beside decoder.onnx


def calibration_feeds(model: WorldModel, worlds: tuple[int, ...] = CALIBRATION_WORLDS,
                      views: int = CALIBRATION_VIEWS) -> list[dict[str, np.ndarray]]:
    """Decoder inputs (one frame each, as the ONNX graph takes them) of `views` views along an explore
    walk of each training world: the encoder's latent of the rendered frame and, for a decoder that
    takes the layout, the level's layout with each segment's look read off the frame (what a session
    gives an observed place; the ceiling eval's decode)."""
    from engine.backends.networks import io_names
    from engine.model.appearance import own_look_layout
    from engine.model.autoencoder import to_model_image
    from engine.model.layout_cells import SceneLayout
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    names = io_names(model)["decoder"][0]
    size, fov = model.image_size, model.cfg.fov_deg
    dev = next(model.parameters()).device
    feeds: list[dict[str, np.ndarray]] = []
    for seed in worlds:
        level = generate_level(seed)
        # Every 4th pose of the walk: views a metre or so apart rather than 24 of one corner.
        poses = make_trajectory(seed, "explore", frames=4 * views, fov_deg=fov, resolution=(size, size)).frames[::4]
        renderer = Renderer(level, size, size, fov)
        try:
            rgb, _ = renderer.render(poses)
        finally:
            renderer.close()
        x = to_model_image(torch.from_numpy(rgb)).to(dev)
        with torch.no_grad():
            z = model.encode(x)
            layout = None
            if model.decoder_takes_layout:
                source = SceneLayout.for_model(level, model)
                try:
                    pixels, uv, seg = (t.to(dev) for t in source.views_of(poses))
                finally:
                    source.close()
                appearance = model.ae.appearance
                layout = pixels if appearance is None else own_look_layout(appearance, x, pixels, uv, seg)
        for i in range(len(poses)):
            args = decoder_args(model, z[i:i + 1], None if layout is None else layout[i:i + 1])
            feeds.append({n: a.to("cpu", torch.float32).numpy().copy() for n, a in zip(names, args)})
    return feeds


def trunk_convs(graph_path: Path, image_size: int) -> list[str]:
    """Names of the 3x3 Conv nodes whose output is below `image_size` on a side, read from the shapes
    that onnx's shape inference gives (the graph must have been through it)."""
    import onnx

    g = onnx.load(str(graph_path)).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*g.value_info, *g.output)}
    kernels = {i.name: list(i.dims)[2:] for i in g.initializer}
    names = []
    for node in g.node:
        if node.op_type != "Conv" or kernels.get(node.input[1]) != [3, 3]:
            continue
        shape = shapes.get(node.output[0])
        if shape is None or len(shape) != 4 or not shape[-1]:
            raise ValueError(f"{graph_path}: no inferred shape for {node.name}'s output")
        if shape[-1] < image_size:
            names.append(node.name)
    return names


def quantize_decoder(model: WorldModel, src: Path, dst: Path, worlds: tuple[int, ...] = CALIBRATION_WORLDS,
                     views: int = CALIBRATION_VIEWS) -> dict:
    """Write the int8-trunk version of the float32 decoder graph `src` to `dst`, calibrated on `views`
    views of each of `worlds`; returns what was done for the export's manifest."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    feeds = calibration_feeds(model, worlds, views)
    if not feeds:
        raise ValueError("no calibration inputs for the int8 decoder")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    inferred = dst.with_name(dst.stem + ".shapes.onnx")
    try:
        # Shape inference first: quantize_static wants it, and trunk_convs reads the shapes.
        quant_pre_process(str(src), str(inferred), skip_symbolic_shape=True)
        nodes = trunk_convs(inferred, model.image_size)
        if not nodes:
            raise ValueError(f"{src}: no 3x3 convolution below {model.image_size}x{model.image_size} to quantize")
        quantize_static(str(inferred), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv"], nodes_to_quantize=nodes,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        inferred.unlink(missing_ok=True)
    return {"quantized_convs": len(nodes), "calibration_frames": len(feeds),
            "calibration_worlds": list(worlds), "activations": "uint8 per tensor (min-max)",
            "weights": "int8 per output channel"}
