"""TensorRT backend: engines built from the ONNX export, cached on disk, run on torch CUDA tensors.

Not exercised in this workplace: TensorRT's runtime cannot be installed here (the PyPI
`tensorrt` packages are stubs that download the libraries from NVIDIA's own index,
out of reach), so its test skips where `import tensorrt` fails. The ONNX it consumes is
tested everywhere. Written against the TensorRT 10 and 11 Python APIs:

  - networks are strongly typed: the ONNX types decide the precision (the fp16
    export for speed), never BuilderFlag.FP16. TensorRT 10 needs the STRONGLY_TYPED
    creation flag for that; TensorRT 11 is always strongly typed, removed the weak-typing
    builder flags, and accepts-but-ignores the creation flag. We set it when the
    enum has it and use nothing that 11 removed.
  - name-based I/O (num_io_tensors / get_tensor_name / get_tensor_mode,
    set_input_shape / set_tensor_address) and execute_async_v3 on torch's current CUDA
    stream, so engine calls are ordered with the torch ops around them without syncs.
  - one optimisation profile with a dynamic batch axis: min 1, opt 1, max `max_batch`.

Engine cache: <user cache>/mirage/tensorrt/<network>-<key>.engine with key =
sha256(ONNX file sha256, TensorRT version, GPU name, compute capability, profile).
A plan is only valid for the TensorRT version and GPU that built it, so any of those
changing builds a new one; an unreadable plan is rebuilt. A timing cache per
TensorRT version and GPU (timing-<version>-<gpu>.cache) is loaded before and saved
after each build, so rebuilding after a weights change skips most kernel timing.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from engine.backends.base import Backend, BackendUnavailable, cache_dir
from engine.backends.networks import decoder_args, io_names
from engine.backends.onnx_export import NETWORKS, cached_export, check_export
from engine.files import atomic_bytes
from engine.model.world_model import WorldModel

WORKSPACE_BYTES = 1 << 30


def import_tensorrt():
    """The tensorrt module, or BackendUnavailable saying why it cannot be used."""
    try:
        import tensorrt as trt
    except Exception as e:  # noqa: BLE001 - the PyPI stub raises at import when its download failed
        raise BackendUnavailable(f"tensorrt is not installed or does not import ({type(e).__name__}: {e}); "
                                 "pip install -e '.[tensorrt]' on a machine with an NVIDIA GPU") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable("tensorrt is installed but torch sees no CUDA GPU")
    return trt


def _torch_dtype(trt, dt) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.bool: torch.bool}
    for name, tdt in (("bfloat16", torch.bfloat16), ("int64", torch.int64), ("int8", torch.int8)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = tdt
    if dt not in table:
        raise BackendUnavailable(f"TensorRT tensor type {dt} has no torch equivalent")
    return table[dt]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")


def engine_key(onnx_sha256: str, trt_version: str, gpu: str, capability: tuple[int, int],
               profile: tuple[int, int, int]) -> str:
    """What an engine plan is valid for: this ONNX, this TensorRT, this GPU, this batch profile."""
    text = f"{onnx_sha256}|trt {trt_version}|{gpu}|sm {capability[0]}.{capability[1]}|profile {profile}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class _Engine:
    """One deserialised engine with its execution context, called like a function on CUDA tensors."""

    def __init__(self, trt, plan: bytes, logger, device: torch.device,
                 io_names: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
        self.trt, self.device = trt, device
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise RuntimeError("deserialize_cuda_engine returned None (plan from another TensorRT or GPU?)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = {n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
        if inputs != set(io_names[0]) or set(names) - inputs != set(io_names[1]):
            raise BackendUnavailable(f"engine has inputs {sorted(inputs)} outputs {sorted(set(names) - inputs)}, "
                                     f"expected {io_names}")
        # Call order is the export's (networks.io_names), whatever order the engine lists its tensors in.
        self.inputs, self.outputs = list(io_names[0]), list(io_names[1])
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}

    def __call__(self, *xs: torch.Tensor) -> list[torch.Tensor]:
        stream = torch.cuda.current_stream(self.device)
        keep = []   # inputs must outlive the enqueue; torch frees them stream-ordered after we return
        for name, x in zip(self.inputs, xs):
            x = x.to(self.device, self.dtypes[name]).contiguous()
            keep.append(x)
            if not self.context.set_input_shape(name, tuple(x.shape)):
                raise RuntimeError(f"TensorRT rejected shape {tuple(x.shape)} for {name!r} (outside the profile?)")
            self.context.set_tensor_address(name, x.data_ptr())
        outs = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return [o.float() for o in outs]


class TensorRTBackend(Backend):
    name = kind = "tensorrt"

    def __init__(self, model: WorldModel, onnx_dir: str | Path | None = None, fp16: bool = True,
                 max_batch: int = 4, engine_dir: str | Path | None = None, reason: str = "") -> None:
        trt = import_tensorrt()
        device = next(model.parameters()).device
        if device.type != "cuda":
            raise BackendUnavailable(f"tensorrt runs on CUDA tensors but the model is on {device}; "
                                     "load it on cuda")
        super().__init__(device, reason)
        if onnx_dir is None:
            onnx_dir = cached_export(model, fp16=fp16)
            self.manifest = check_export(onnx_dir, model, fp16=fp16)
        else:   # an explicit export decides the precision: it was made with or without --fp16
            self.manifest = check_export(onnx_dir, model)
        self.onnx_dir = Path(onnx_dir)
        self.fp16 = bool(self.manifest["fp16"])
        self.engine_dir = Path(engine_dir) if engine_dir else cache_dir("tensorrt")
        self.engine_dir.mkdir(parents=True, exist_ok=True)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.trt = trt
        self.profile = (1, 1, int(max_batch))
        idx = device.index if device.index is not None else torch.cuda.current_device()
        self.gpu = torch.cuda.get_device_name(idx)
        self.capability = torch.cuda.get_device_capability(idx)
        self.model = model
        self.io = io_names(model)
        self.built: list[str] = []
        self.engines = {name: self._load_or_build(name) for name in NETWORKS}
        if not self.reason:
            how = f"built {', '.join(self.built)}" if self.built else "engines from cache"
            self.reason = (f"TensorRT {trt.__version__} on {self.gpu}, {'fp16' if self.fp16 else 'fp32'}, {how}")

    # ---- engine cache ---------------------------------------------------------------------

    def engine_path(self, name: str) -> Path:
        key = engine_key(self.manifest["files"][f"{name}.onnx"], self.trt.__version__, self.gpu, self.capability,
                         self.profile)
        return self.engine_dir / f"{name}-{key}.engine"

    def timing_cache_path(self) -> Path:
        return self.engine_dir / f"timing-{_slug(self.trt.__version__)}-{_slug(self.gpu)}.cache"

    def _load_or_build(self, name: str) -> _Engine:
        path = self.engine_path(name)
        if path.is_file():
            try:
                return _Engine(self.trt, path.read_bytes(), self.logger, self.device, self.io[name])
            except Exception:  # noqa: BLE001 - a corrupt or foreign plan: rebuild it
                path.unlink(missing_ok=True)
        plan = self._build(name)
        atomic_bytes(path, plan)
        self.built.append(name)
        return _Engine(self.trt, plan, self.logger, self.device, self.io[name])

    def _build(self, name: str) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        flags = 0
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if strongly_typed is not None:   # TensorRT 10: opt in; 11: always on, flag accepted and ignored
            flags |= 1 << int(strongly_typed)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        onnx_path = self.onnx_dir / f"{name}.onnx"
        if not parser.parse(onnx_path.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailable(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        profile = builder.create_optimization_profile()
        lo, opt, hi = self.profile
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            dims = list(tensor.shape)

            def at(b: int) -> tuple[int, ...]:
                return tuple(b if d < 0 else d for d in dims)   # only the batch axis is dynamic (-1)

            profile.set_shape(tensor.name, at(lo), at(opt), at(hi))
        config.add_optimization_profile(profile)
        timing_path = self.timing_cache_path()
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(timing, False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise BackendUnavailable(f"TensorRT failed to build an engine for {onnx_path} (see its log above)")
        try:   # keep what was timed for the next build; a failure here costs only time later
            data = config.get_timing_cache().serialize()
            atomic_bytes(timing_path, bytes(memoryview(data)))
        except Exception:  # noqa: BLE001
            pass
        return bytes(memoryview(plan))

    # ---- the three calls ------------------------------------------------------------------

    def encode(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.engines["encoder"](rgb)[0].to(rgb.device)

    def generate(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.engines["generator"](x_t, t, cond)[0].to(x_t.device)

    def decode(self, z: torch.Tensor, layout: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, depth = self.engines["decoder"](*decoder_args(self.model, z, layout))
        return rgb.to(z.device), depth.to(z.device)

    def close(self) -> None:
        self.engines.clear()
