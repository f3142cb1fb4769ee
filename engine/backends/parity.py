"""Numerical parity of an exported network set against the torch model it came from.

Used by `mirage export onnx` after writing (so a broken export shows at once) and by
the tests. Runs each ONNX graph with ONNX Runtime's CPU provider directly, so it also
checks fp16 exports, which the OnnxRuntimeBackend does not load.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.backends.networks import IO_NAMES, build_networks, example_inputs
from engine.backends.onnx_export import NETWORKS, check_export
from engine.backends.ort_backend import import_onnxruntime, session_options
from engine.model.world_model import WorldModel


def network_parity(model: WorldModel, onnx_dir: str | Path, batch: int = 1, seed: int = 0) -> dict[str, float]:
    """network -> max abs difference over its outputs between ONNX Runtime and torch float32, on random inputs."""
    ort = import_onnxruntime()
    check_export(onnx_dir, model)
    cpu = model if next(model.parameters()).device.type == "cpu" else _cpu(model)
    nets = build_networks(cpu)
    inputs = example_inputs(cpu, batch=batch, seed=seed)
    worst: dict[str, float] = {}
    for name in NETWORKS:
        sess = ort.InferenceSession(str(Path(onnx_dir) / f"{name}.onnx"), sess_options=session_options(),
                                    providers=["CPUExecutionProvider"])
        ins, outs = IO_NAMES[name]
        got = sess.run(list(outs), {n: x.numpy() for n, x in zip(ins, inputs[name])})
        with torch.no_grad():
            ref = nets[name](*inputs[name])
        ref = ref if isinstance(ref, tuple) else (ref,)
        worst[name] = max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got))
    return worst


def _cpu(model: WorldModel) -> WorldModel:
    import copy

    return copy.deepcopy(model).cpu()
