"""Choosing a backend: what can run here, what `auto` picks, and falling back without crashing.

`auto` tries, in order, the fastest thing that is installed and works on the
model's device:

    tensorrt  >  torch-cuda  >  onnxruntime  >  torch-cpu

tensorrt and torch-cuda need the model on a CUDA device; onnxruntime runs the CPU
execution provider, so it is the pick for a model on the CPU (it measured faster
than eager torch there: docs/BACKENDS.md). A backend that was asked for by name but
cannot run (not installed, no GPU, export or engine build failed) falls back to
torch on the model's device -- the reference, which always runs -- and the message
says what was asked, why it could not run and what runs instead.

Two entry points:
  - backend_availability(device): cheap (imports, no model, no export): for settings
    panels and `--backend` help, to list what is selectable and why not.
  - select_backend(requested, model): builds the backend; returns it with a message.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch

from engine.backends.base import BACKEND_NAMES, Backend, BackendUnavailable
from engine.backends.torch_backend import TorchBackend
from engine.model.world_model import WorldModel

AUTO_ORDER = ("tensorrt", "torch-cuda", "onnxruntime", "torch-cpu")


def _importable(module: str) -> tuple[bool, str]:
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - the tensorrt stub package raises at import, not ImportError only
        return False, f"{module} is not installed or does not import ({type(e).__name__}: {e})"
    return True, f"{module} {getattr(mod, '__version__', '')}".strip()


def backend_availability(device: str | torch.device | None = None) -> dict[str, tuple[bool, str]]:
    """name -> (can it run here, why / why not), for every name in BACKEND_NAMES. No model needed.

    `device` is where the model will live (default: CUDA when torch sees one, else the CPU).
    """
    cuda = torch.cuda.is_available()
    dev = torch.device(device) if device is not None else torch.device("cuda" if cuda else "cpu")
    out: dict[str, tuple[bool, str]] = {}
    out["torch"] = (True, f"PyTorch {torch.__version__} on {dev.type}")
    ok, why = _importable("onnxruntime")
    out["onnxruntime"] = (ok, f"{why}, CPU execution provider" if ok else why + "; pip install onnxruntime")
    ok, why = _importable("tensorrt")
    if not ok:
        why += "; pip install -e '.[tensorrt]' on a machine with an NVIDIA GPU"
    elif not cuda:
        ok, why = False, f"{why} is installed but torch sees no CUDA GPU"
    elif dev.type != "cuda":
        ok, why = False, f"{why} needs the model on a CUDA device, it is on {dev.type}"
    out["tensorrt"] = (ok, why)
    pick = plan_backend("auto", dev, out)[0]
    out = {"auto": (True, f"best available here: {pick}"), **out}
    return {k: out[k] for k in BACKEND_NAMES}


def plan_backend(requested: str, device: str | torch.device,
                 availability: dict[str, tuple[bool, str]] | None = None) -> tuple[str, str | None]:
    """The backend family that select_backend will try first, and a message when it is not the one asked for.

    From availability alone (no model, no build): a backend can still fail later, in
    select_backend, which then falls back and says so.
    """
    dev = torch.device(device)
    avail = availability or backend_availability(dev)
    if requested == "auto":
        for cand in AUTO_ORDER:
            kind = cand.split("-")[0]
            if cand.startswith("torch-"):
                if cand == f"torch-{dev.type}":
                    return "torch", None
                continue
            if avail[kind][0]:
                return kind, None
        return "torch", None
    if requested not in BACKEND_NAMES:
        return "torch", f"unknown backend {requested!r} (choose from {', '.join(BACKEND_NAMES)}); using torch"
    ok, why = avail[requested]
    if ok:
        return requested, None
    return "torch", f"backend {requested}: {why}; using torch instead"


def _build(kind: str, model: WorldModel, onnx_dir: str | Path | None, cuda_graphs: bool, int8: bool = True) -> Backend:
    if kind == "torch":
        return TorchBackend(model, cuda_graphs=cuda_graphs)
    if kind == "onnxruntime":
        from engine.backends.ort_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, onnx_dir, int8=int8)
    if kind == "tensorrt":
        from engine.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(model, onnx_dir)
    raise BackendUnavailable(f"unknown backend {kind!r}")


def select_backend(requested: str, model: WorldModel, onnx_dir: str | Path | None = None,
                   device: str | torch.device | None = None, cuda_graphs: bool = False,
                   int8: bool = True) -> tuple[Backend, str]:
    """Build the backend to run `model` with; returns it and one line saying which one and why.

    requested: "auto", "torch", "onnxruntime" or "tensorrt". onnx_dir: an export made
    by `mirage export onnx` (default: export on the fly into the user's cache).
    device: where session tensors live; must be the model's device (the default).
    int8: ONNX Runtime runs the decoder's int8 export where it can (engine/backends/quantize.py);
    False runs its float32 decoder (labelled "onnxruntime-fp32").
    Never raises for a backend that cannot run: it falls back to torch and says so.
    """
    mdev = next(model.parameters()).device
    if device is not None and torch.device(device) != mdev:
        raise ValueError(f"the model is on {mdev}, not {device}: load it on the device the session runs on")
    if requested == "torch":   # the default of every session: no probing of other runtimes
        backend = TorchBackend(model, cuda_graphs=cuda_graphs)
        return backend, f"backend {backend.name}: {backend.reason}"
    avail = backend_availability(mdev)
    if requested == "auto":
        tried: list[str] = []
        for cand in AUTO_ORDER:
            kind = cand.split("-")[0]
            if cand.startswith("torch-") and cand != f"torch-{mdev.type}":
                continue
            if kind != "torch" and not avail[kind][0]:
                tried.append(f"{kind}: {avail[kind][1]}")
                continue
            try:
                backend = _build(kind, model, onnx_dir, cuda_graphs, int8)
            except Exception as e:  # noqa: BLE001 - a failing backend is reported and the next one tried
                tried.append(f"{kind} failed: {e}")
                continue
            skipped = f"; skipped {'; '.join(tried)}" if tried else ""
            return backend, f"backend auto -> {backend.name}: {backend.reason}{skipped}"
    kind, note = plan_backend(requested, mdev, avail)
    try:
        backend = _build(kind, model, onnx_dir, cuda_graphs, int8)
    except Exception as e:  # noqa: BLE001 - never crash on a backend: fall back to the reference
        if kind == "torch":
            raise
        note = f"backend {kind} failed ({type(e).__name__}: {e}); using torch instead"
        backend = TorchBackend(model, cuda_graphs=cuda_graphs)
    if note:
        backend.reason = f"{backend.reason}; {note}"
        return backend, f"{note} ({backend.name})"
    return backend, f"backend {backend.name}: {backend.reason}"
