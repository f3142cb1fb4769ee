"""The one interface every inference backend implements, and what they share.

A backend runs the three per-frame networks of a WorldModel and nothing else:

    encode(rgb)           rgb (B, 3, H, W) in [-1, 1]          -> normalised latent z (B, C, S, S)
    generate(x_t, t, c)   noisy latent, flow time (B,), cond    -> predicted clean latent x0 (B, C, S, S)
    decode(z, layout)     normalised latent (and, for a model whose decoder takes it, the
                          full-resolution scene layout (B, 9, H, W); None: layout off)
                                                                -> rgb (B, 3, H, W) in [-1, 1], depth (B, 1, H, W) m

Latents are the *normalised* ones, exactly what WorldModel.encode/.gen/.decode take
and give, so the sampler, the memory and the projection code stay in torch tensors
on the session's device whatever runs the networks: a backend is swapped without the
session noticing. Tensors come back on the device they were given on.

Backends are stateless between calls (CUDA-graph and TensorRT buffers are reused, but
every output is a fresh tensor), so one backend can serve several sessions that call
it from one thread, as the explorer's memory on/off comparison does.
"""
from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path

import torch

# Names a person or a setting can ask for; "auto" picks among the others (engine/backends/select.py).
BACKEND_NAMES = ("auto", "torch", "onnxruntime", "tensorrt")


class BackendUnavailable(RuntimeError):
    """A backend cannot run here; the message says why in words a person can act on."""


class Backend(ABC):
    """Runs encoder, generator step and decoder. Subclasses set `name` and `reason`."""

    #: short label, shown in the GUI and bench tables: "torch-cpu", "torch-cuda", "onnxruntime", "tensorrt"
    name: str = "backend"
    #: the family a setting names ("torch", "onnxruntime", "tensorrt")
    kind: str = "backend"

    def __init__(self, device: torch.device, reason: str = "") -> None:
        self.device = torch.device(device)
        #: one line on why this backend runs (and what it fell back from, when it did)
        self.reason = reason

    @abstractmethod
    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, H, W) in [-1, 1] -> normalised latent (B, C, S, S)."""

    @abstractmethod
    def generate(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """One flow step of the generator: x_t (B, C, S, S), t (B,), cond (B, K, S, S) -> x0 (B, C, S, S)."""

    @abstractmethod
    def decode(self, z: torch.Tensor, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised latent -> rgb (B, 3, H, W) clamped to [-1, 1], depth (B, 1, H, W) in metres.
        `layout` reaches only a decoder that takes it (WorldModel.decoder_takes_layout); None there is
        layout off."""

    def close(self) -> None:
        """Release sessions, engines and buffers (optional; garbage collection does it too)."""

    def describe(self) -> str:
        return f"{self.name} ({self.reason})" if self.reason else self.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}>"


# ---- shared helpers -----------------------------------------------------------------------

def cache_dir(*parts: str) -> Path:
    """The user's cache directory for Mirage (ONNX exports, TensorRT engines), created on demand.

    MIRAGE_CACHE_DIR wins (tests, portable installs); then platformdirs where installed
    (the OS's own convention); then $XDG_CACHE_HOME/mirage or ~/.cache/mirage.
    """
    env = os.environ.get("MIRAGE_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        try:
            import platformdirs

            root = Path(platformdirs.user_cache_dir("mirage", appauthor=False))
        except ImportError:
            root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mirage"
    d = root.joinpath(*parts)
    d.mkdir(parents=True, exist_ok=True)
    return d


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_hash(module: torch.nn.Module) -> str:
    """sha256 over parameter names, dtypes, shapes and bytes: identifies weights whether or not they came from a file."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
