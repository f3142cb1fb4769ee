"""ONNX Runtime backend (CPU execution provider).

Runs the exported encoder, generator step and decoder. Tensors cross into the
runtime as numpy arrays (a zero-copy view for contiguous float32 CPU tensors) and
come back as torch tensors on the device they came from, so the memory, the
projection and the sampler never leave torch.

Without an export directory the model is exported on first use into the user's
cache (engine.backends.onnx_export.cached_export), keyed by a hash of its weights,
so later runs load in well under a second.

Session options, and why:
  - intra_op threads = torch's thread count: the session shares the CPU with torch's
    memory read/write in the same step; more threads than cores only adds contention.
  - ORT_ENABLE_ALL graph optimisation: conv + activation fusion and the NCHWc layout
    transforms are where ONNX Runtime gains on small convolutions.
  - sequential execution: the graphs are one chain of convs; the parallel executor
    would only add scheduling overhead.
  - no spinning: by default ONNX Runtime's pool threads busy-wait after each run,
    taking the cores torch needs for the memory read/write between network calls
    (measured: memory write 6.3 ms with spinning, 1.6 ms without; docs/BACKENDS.md).

The decoder runs with its trunk in int8 (engine/backends/quantize.py) where the export has it; the
cached export is made with it. `int8=False`, an explicit export without it, or a failure to make it
runs the float32 decoder, and the backend's reason says which runs and why.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.backends.base import Backend, BackendUnavailable
from engine.backends.networks import (
    build_networks,
    decoder_args,
    example_inputs,
    io_names,
)
from engine.backends.onnx_export import NETWORKS, cached_export, check_export
from engine.backends.quantize import INT8_DECODER
from engine.model.world_model import WorldModel

FLOAT_DECODER_NAME = "onnxruntime-fp32"   # the label of this backend running its float32 decoder


def import_onnxruntime():
    """The onnxruntime module, or BackendUnavailable saying why it cannot be used."""
    try:
        import onnxruntime as ort
    except Exception as e:  # noqa: BLE001 - a broken install raises more than ImportError
        raise BackendUnavailable(f"onnxruntime is not installed or does not import ({type(e).__name__}: {e}); "
                                 "pip install onnxruntime") from None
    if "CPUExecutionProvider" not in ort.get_available_providers():
        raise BackendUnavailable(f"onnxruntime {ort.__version__} has no CPU execution provider")
    return ort


def session_options(threads: int | None = None):
    ort = import_onnxruntime()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3   # errors only: the runtime's warnings about unused initialisers are noise here
    return so


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float32).contiguous().numpy()


class OnnxRuntimeBackend(Backend):
    name = kind = "onnxruntime"

    def __init__(self, model: WorldModel, onnx_dir: str | Path | None = None, threads: int | None = None,
                 reason: str = "", int8: bool = True) -> None:
        ort = import_onnxruntime()
        device = next(model.parameters()).device
        # An explicit directory must match the model (a stale export is an error the user fixes);
        # the cache is re-exported silently when the weights change.
        why_float = "" if int8 else "float32 decoder asked for"
        if onnx_dir is None and int8:
            try:
                onnx_dir = cached_export(model, fp16=False, int8=True)
            except Exception as e:  # noqa: BLE001 - the float32 decoder still runs; the reason says why
                why_float = f"no int8 decoder ({type(e).__name__}: {e}); float32 decoder"
        if onnx_dir is None:
            onnx_dir = cached_export(model, fp16=False)
        self.manifest = check_export(onnx_dir, model, fp16=False)
        self.onnx_dir = Path(onnx_dir)
        files = {name: f"{name}.onnx" for name in NETWORKS}
        if int8 and not why_float:
            if INT8_DECODER in self.manifest["files"]:
                files["decoder"] = INT8_DECODER
            else:
                why_float = f"{self.onnx_dir} has no {INT8_DECODER}; float32 decoder"
        self.int8 = files["decoder"] == INT8_DECODER
        if not self.int8:   # labelled apart in the GUI and bench tables: its speed is not the int8 decoder's
            self.name = FLOAT_DECODER_NAME
        precision = "int8 decoder trunk" if self.int8 else why_float
        super().__init__(device, reason or f"ONNX Runtime {ort.__version__}, CPU execution provider, {precision}")
        so = session_options(threads)
        self.sessions = {name: ort.InferenceSession(str(self.onnx_dir / f), sess_options=so,
                                                    providers=["CPUExecutionProvider"])
                         for name, f in files.items()}
        self.model = model
        self.io = io_names(model)
        for name, sess in self.sessions.items():
            ins = tuple(i.name for i in sess.get_inputs())
            outs = tuple(o.name for o in sess.get_outputs())
            if (ins, outs) != self.io[name]:
                raise BackendUnavailable(f"{self.onnx_dir / name}.onnx: inputs {ins} outputs {outs}, "
                                         f"expected {self.io[name]}")

    def _run(self, name: str, *xs: torch.Tensor) -> list[torch.Tensor]:
        ins, outs = self.io[name]
        res = self.sessions[name].run(list(outs), {n: _to_numpy(x) for n, x in zip(ins, xs)})
        dev = xs[0].device
        return [torch.from_numpy(r).to(dev) for r in res]

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        return self._run("encoder", rgb)[0]

    def generate(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self._run("generator", x_t, t, cond)[0]

    def decode(self, z: torch.Tensor, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, depth = self._run("decoder", *decoder_args(self.model, z, layout))
        return rgb, depth

    def close(self) -> None:
        self.sessions.clear()


# ---- parity of an export with torch -------------------------------------------------------

def network_parity(model: WorldModel, onnx_dir: str | Path, batch: int = 1, seed: int = 0) -> dict[str, float]:
    """network -> max abs difference over its outputs between ONNX Runtime and torch float32, on random inputs.

    Used by `mirage export onnx` after writing (a broken export shows at once) and by the
    tests. Runs each graph directly, so it also checks fp16 exports, which the backend
    above does not load.
    """
    import copy

    ort = import_onnxruntime()
    check_export(onnx_dir, model)
    cpu = model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()
    nets = build_networks(cpu)
    inputs = example_inputs(cpu, batch=batch, seed=seed)
    worst: dict[str, float] = {}
    for name in NETWORKS:
        sess = ort.InferenceSession(str(Path(onnx_dir) / f"{name}.onnx"), sess_options=session_options(),
                                    providers=["CPUExecutionProvider"])
        ins, outs = io_names(cpu)[name]
        got = sess.run(list(outs), {n: x.numpy() for n, x in zip(ins, inputs[name])})
        with torch.no_grad():
            ref = nets[name](*inputs[name])
        ref = ref if isinstance(ref, tuple) else (ref,)
        worst[name] = max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got))
    return worst


FIDELITY_WORLDS = (1_000_005, 1_000_006)   # eval-range worlds: views the calibration never saw


def int8_fidelity(model: WorldModel, onnx_dir: Path, worlds: tuple[int, ...] = FIDELITY_WORLDS,
                  views: int = 24, threads: int | None = None) -> dict[str, float]:
    """How close the int8 decoder's frames are to the float32 decoder's in ONNX Runtime, on `views` views
    of each of `worlds`: PSNR (dB, frames in [0, 1]) median and minimum over the frames."""
    from engine.backends.quantize import calibration_feeds

    ort = import_onnxruntime()
    outs = list(io_names(model)["decoder"][1])
    run = {f: ort.InferenceSession(str(Path(onnx_dir) / f), sess_options=session_options(threads),
                                   providers=["CPUExecutionProvider"]) for f in ("decoder.onnx", INT8_DECODER)}
    psnr = []
    for feed in calibration_feeds(model, worlds, views):
        a, b = (run[f].run(outs, feed)[0] for f in run)
        mse = float(np.mean(((a - b) / 2.0) ** 2))   # rgb is in [-1, 1]
        psnr.append(10 * np.log10(1.0 / max(mse, 1e-12)))
    return {"psnr_median": float(np.median(psnr)), "psnr_min": float(np.min(psnr)), "frames": len(psnr)}
