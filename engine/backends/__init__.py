"""Inference backends behind one interface: torch (CPU/CUDA, CUDA graphs), ONNX Runtime, TensorRT.

    backend, message = select_backend("auto", model)
    session = WorldSession(model, backend=backend)

See docs/BACKENDS.md. onnxruntime and tensorrt are imported only when used.
"""
from engine.backends.base import BACKEND_NAMES, Backend, BackendUnavailable, cache_dir
from engine.backends.select import backend_availability, plan_backend, select_backend
from engine.backends.torch_backend import TorchBackend

__all__ = ["BACKEND_NAMES", "Backend", "BackendUnavailable", "TorchBackend", "backend_availability", "cache_dir",
           "plan_backend", "select_backend"]
