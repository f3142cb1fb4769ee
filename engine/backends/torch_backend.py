"""PyTorch backend: the reference, on CPU or CUDA, optionally with CUDA graphs.

Eager mode calls WorldModel.encode / .gen / .decode unchanged, so a session on this
backend is bit-for-bit what it was before backends existed (deterministic for a seed).

CUDA graphs (cuda_graphs=True, CUDA only): the generator step and the decoder are
captured once per input shape and replayed. A step of the default model is a few
dozen small kernels whose launch overhead, not arithmetic, dominates on a large GPU;
a replay launches them all at once. Inputs are copied into the graph's static
buffers and outputs cloned out, because the next replay overwrites them and the
session keeps latents (previous frame, memory writes) across steps. Capture is
guarded: if it fails (an op that cannot be captured, an old driver) the backend says
so in `reason` and runs eagerly.
"""
from __future__ import annotations

from typing import Callable

import torch

from engine.backends.base import Backend
from engine.model.world_model import WorldModel

GraphKey = tuple[tuple[int, ...], ...]


class _GraphedCall:
    """One function captured in a CUDA graph for one set of input shapes."""

    def __init__(self, fn: Callable[..., tuple[torch.Tensor, ...]], inputs: tuple[torch.Tensor, ...],
                 warmup: int = 3) -> None:
        self.static_in = tuple(x.detach().clone() for x in inputs)
        # Warm-up on a side stream, as torch's docs require: lazy initialisation (cuDNN
        # autotuning, allocator pools) must not happen inside the capture.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(warmup):
                fn(*self.static_in)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.static_out = fn(*self.static_in)

    def __call__(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for buf, x in zip(self.static_in, xs):
            buf.copy_(x)
        self.graph.replay()
        return tuple(o.clone() for o in self.static_out)


class TorchBackend(Backend):
    kind = "torch"

    def __init__(self, model: WorldModel, cuda_graphs: bool = False, reason: str = "") -> None:
        device = next(model.parameters()).device
        super().__init__(device, reason)
        self.model = model
        self.name = f"torch-{device.type}"
        self.cuda_graphs = bool(cuda_graphs) and device.type == "cuda" and torch.cuda.is_available()
        if cuda_graphs and not self.cuda_graphs:
            self.reason = (self.reason + "; " if self.reason else "") + "CUDA graphs need a CUDA device: running eagerly"
        if self.cuda_graphs:
            self.name += "-graphs"
        self._graphs: dict[tuple[str, GraphKey], _GraphedCall | None] = {}
        if not self.reason:
            self.reason = f"PyTorch {torch.__version__} on {device}" + (" with CUDA graphs" if self.cuda_graphs else "")

    # ---- eager calls: exactly the model's own methods ------------------------------------

    def _gen(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model.gen(x_t, t, cond),)

    def _dec(self, z: torch.Tensor, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, depth, _ = self.model.decode(z, layout)
        return rgb, depth

    def _call(self, kind: str, fn: Callable[..., tuple[torch.Tensor, ...]],
              *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.cuda_graphs:
            return fn(*xs)
        key = (kind, tuple(tuple(x.shape) for x in xs))
        if key not in self._graphs:
            try:
                self._graphs[key] = _GraphedCall(fn, xs)
            except Exception as e:  # noqa: BLE001 - any capture failure: run this shape eagerly from now on
                self._graphs[key] = None
                self.reason += f"; CUDA graph capture of the {kind} failed ({type(e).__name__}: {e}), running eagerly"
        graphed = self._graphs[key]
        return graphed(*xs) if graphed is not None else fn(*xs)

    @torch.no_grad()
    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        # Observations are rare (the first frame, a reset): not worth a graph.
        return self.model.encode(rgb)

    @torch.no_grad()
    def generate(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self._call("generator", self._gen, x_t, t, cond)[0]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        xs = (z,) if layout is None or not self.model.decoder_takes_layout else (z, layout)
        rgb, depth = self._call("decoder", self._dec, *xs)
        return rgb, depth

    def close(self) -> None:
        self._graphs.clear()
