"""Backends: ONNX export, ONNX Runtime parity with torch, selection and fallback, TensorRT where it imports.

All on the tiny model trained on real rendered frames (tests/model_fixtures.py), with
the real onnxruntime. Exports take a few seconds each (the dynamo exporter), so the
fp32 export is made once per module.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from model_fixtures import tiny_model, tiny_model_dir  # noqa: F401  (pytest fixtures)

from engine.backends import (
    BackendUnavailable,
    TorchBackend,
    backend_availability,
    select_backend,
)
from engine.backends.networks import IO_NAMES, build_networks, example_inputs
from engine.backends.onnx_export import StaleExportError, check_export, export_onnx
from engine.session import WorldSession
from engine.trajectory import make_trajectory


def _tensorrt_import_error() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except Exception as e:  # noqa: BLE001 - the PyPI stub raises more than ImportError
        return f"{type(e).__name__}: {e}"
    return None


TRT_MISSING = _tensorrt_import_error()


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    """On-the-fly exports and engines go to a temporary cache, never the user's."""
    old = os.environ.get("MIRAGE_CACHE_DIR")
    os.environ["MIRAGE_CACHE_DIR"] = str(tmp_path_factory.mktemp("mirage_cache"))
    yield
    if old is None:
        os.environ.pop("MIRAGE_CACHE_DIR", None)
    else:
        os.environ["MIRAGE_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def onnx_dir(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny"
    export_onnx(tiny_model, out)
    return out


@pytest.fixture(scope="module")
def first_view(egl, eval_seed, tiny_model):
    """A 51-pose walk and its real rendered first observation."""
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    size = tiny_model.image_size
    traj = make_trajectory(eval_seed, "explore", frames=51, fov_deg=tiny_model.cfg.fov_deg, resolution=(size, size))
    r = Renderer(generate_level(eval_seed), size, size, traj.fov_deg)
    rgb, depth = r.render(traj.frames[:1])
    r.close()
    return traj, rgb[0], depth[0]


# ---- export ---------------------------------------------------------------------------------

def test_export_writes_three_named_graphs_with_a_dynamic_batch(onnx_dir, tiny_model):
    import onnx

    for name, (ins, outs) in IO_NAMES.items():
        graph = onnx.load(str(onnx_dir / f"{name}.onnx"))
        onnx.checker.check_model(graph)
        assert tuple(i.name for i in graph.graph.input) == ins
        assert tuple(o.name for o in graph.graph.output) == outs
        for value in [*graph.graph.input, *graph.graph.output]:
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param == "batch", (name, value.name)
            assert all(d.dim_value > 0 for d in dims[1:]), (name, value.name)
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    assert manifest["opset"] == 18 and manifest["fp16"] is False
    assert set(manifest["files"]) == {"encoder.onnx", "generator.onnx", "decoder.onnx"}
    assert manifest["shapes"]["decoder"]["rgb"] == ["batch", 3, tiny_model.image_size, tiny_model.image_size]
    assert check_export(onnx_dir, tiny_model)["weights"] == manifest["weights"]


def test_stale_or_changed_export_is_detected(onnx_dir, tiny_model, tmp_path):
    import copy
    import shutil

    other = copy.deepcopy(tiny_model)
    with torch.no_grad():
        other.gen.out.bias.add_(0.01)
    with pytest.raises(StaleExportError, match="generator changed"):
        check_export(onnx_dir, other)
    with pytest.raises(StaleExportError, match="fp16"):
        check_export(onnx_dir, tiny_model, fp16=True)
    copied = tmp_path / "copy"
    shutil.copytree(onnx_dir, copied)
    with open(copied / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(StaleExportError, match="changed since export"):
        check_export(copied, tiny_model)
    # A stale export asked for by name falls back to torch, saying why.
    backend, message = select_backend("onnxruntime", other, onnx_dir=onnx_dir)
    assert isinstance(backend, TorchBackend) and "onnxruntime" in message and "stale" in message


def test_fp16_export_is_typed_half_inside_with_float_io(tiny_model, tmp_path):
    import onnx

    from engine.backends.ort_backend import network_parity

    out = tmp_path / "fp16"
    manifest = export_onnx(tiny_model, out, fp16=True)
    assert manifest["fp16"] is True
    for name in IO_NAMES:
        graph = onnx.load(str(out / f"{name}.onnx"))
        kinds = {init.data_type for init in graph.graph.initializer}
        assert onnx.TensorProto.FLOAT16 in kinds, name   # the convolution weights
        assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
                   for v in [*graph.graph.input, *graph.graph.output])
    worst = network_parity(tiny_model, out)   # ONNX Runtime runs fp16 on the CPU too
    assert max(worst.values()) < 5e-2, worst


# ---- ONNX Runtime parity ----------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_torch_per_network(onnx_dir, tiny_model, batch):
    from engine.backends.ort_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(tiny_model, onnx_dir)
    nets = build_networks(tiny_model)
    inputs = example_inputs(tiny_model, batch=batch, seed=batch)
    calls = {"encoder": backend.encode, "generator": backend.generate, "decoder": backend.decode}
    with torch.no_grad():
        for name, call in calls.items():
            ref, got = nets[name](*inputs[name]), call(*inputs[name])
            ref, got = (ref, got) if isinstance(ref, tuple) else ((ref,), (got,))
            for r, g in zip(ref, got):
                assert g.shape == r.shape and g.dtype == torch.float32
                assert float((r - g).abs().max()) <= 1e-3, name
    # The wrappers are the model's own calls: what the torch backend runs.
    rgb, depth, _ = tiny_model.decode(*inputs["decoder"])
    assert torch.equal(rgb, nets["decoder"](*inputs["decoder"])[0])


def test_rollout_of_50_frames_matches_torch(onnx_dir, tiny_model, first_view):
    """50 generated frames, memory on: the ONNX Runtime session stays within 2/255 of torch.

    Per-pixel identity is not expected over long rollouts: float32 differences of 1e-6
    between the runtimes' convolutions can flip a memory depth test or a voxel
    boundary, which then moves a few pixels by more. So: every frame's mean absolute
    difference within 2/255, and the first frames within 2/255 at every pixel.
    """
    from engine.backends.ort_backend import OnnxRuntimeBackend

    traj, rgb, depth = first_view
    frames = {}
    for name, backend in (("torch", "torch"), ("onnxruntime", OnnxRuntimeBackend(tiny_model, onnx_dir))):
        s = WorldSession(tiny_model, memory=True, seed=5, backend=backend)
        s.observe(rgb, traj.frames[0], depth)
        frames[name] = [s.step(p).frame.astype(np.int16) for p in traj.frames[1:51]]
    assert len(frames["torch"]) == 50
    diffs = [np.abs(a - b) for a, b in zip(frames["torch"], frames["onnxruntime"])]
    means = [float(d.mean()) for d in diffs]
    assert max(means) <= 2.0, means
    assert max(int(d.max()) for d in diffs[:10]) <= 2
    assert float(np.mean([(d > 2).mean() for d in diffs])) < 0.02


def test_int8_export_quantizes_the_decoder_trunk_and_draws_what_float_draws(tiny_model, first_view, tmp_path):
    """`export_onnx(int8=True)` adds decoder.int8.onnx: its 3x3 convolutions below the frame's size in
    int8 (calibrated on rendered views), everything else as exported; ONNX Runtime runs it by default
    and its frames stay within a few levels of the float32 decoder's."""
    import onnx

    from engine.backends.onnx_export import INT8_DECODER
    from engine.backends.ort_backend import OnnxRuntimeBackend
    from engine.backends.quantize import trunk_convs

    out = tmp_path / "int8"
    manifest = export_onnx(tiny_model, out, int8=True)
    assert INT8_DECODER in manifest["files"] and manifest["int8"]["calibration_frames"] == 48
    assert check_export(out, tiny_model, int8=True)["int8"] == manifest["int8"]
    graph = onnx.load(str(out / INT8_DECODER)).graph
    made_by = {o: n for n in graph.node for o in n.output}
    quantized = {n.name for n in graph.node if n.op_type == "Conv" and made_by[n.input[1]].op_type == "DequantizeLinear"}
    assert quantized and len(quantized) == manifest["int8"]["quantized_convs"]
    # The convolutions trunk_convs picks: 3x3, below full resolution (the tiny decoder has no other;
    # the coded decoder's full-resolution ones stay float: test_appearance).
    from onnxruntime.quantization.shape_inference import quant_pre_process
    quant_pre_process(str(out / "decoder.onnx"), str(tmp_path / "shapes.onnx"), skip_symbolic_shape=True)
    assert quantized == set(trunk_convs(tmp_path / "shapes.onnx", tiny_model.image_size))

    traj, rgb, depth = first_view
    frames = {}
    for name, backend in (("int8", OnnxRuntimeBackend(tiny_model, out)),
                          ("fp32", OnnxRuntimeBackend(tiny_model, out, int8=False))):
        assert backend.int8 == (name == "int8") and ("int8" if name == "int8" else "float32") in backend.reason
        s = WorldSession(tiny_model, memory=True, seed=5, backend=backend)
        s.observe(rgb, traj.frames[0], depth)
        frames[name] = np.stack([s.step(p).frame for p in traj.frames[1:21]]).astype(np.float32)
    assert OnnxRuntimeBackend(tiny_model, out, int8=False).name == "onnxruntime-fp32"
    diff = np.abs(frames["int8"] - frames["fp32"])
    assert diff.mean() <= 2.0 and diff.max() > 0, (diff.mean(), diff.max())


def test_an_export_without_the_int8_decoder_runs_float32_and_says_so(onnx_dir, tiny_model):
    from engine.backends.ort_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(tiny_model, onnx_dir)
    assert not backend.int8 and backend.name == "onnxruntime-fp32"
    assert "no decoder.int8.onnx" in backend.reason and "float32 decoder" in backend.reason
    with pytest.raises(StaleExportError, match="no int8 decoder"):
        check_export(onnx_dir, tiny_model, int8=True)


# ---- selection and fallback -------------------------------------------------------------------

def test_default_session_backend_is_torch(tiny_model):
    s = WorldSession(tiny_model)
    assert isinstance(s.backend, TorchBackend) and s.backend.name == "torch-cpu"


def test_tensorrt_without_tensorrt_falls_back_with_a_message(tiny_model):
    if TRT_MISSING is None and torch.cuda.is_available():
        pytest.skip("TensorRT imports here: the fallback is not taken")
    backend, message = select_backend("tensorrt", tiny_model)
    assert isinstance(backend, TorchBackend)
    assert "tensorrt" in message and "using torch" in message
    ok, why = backend_availability("cpu")["tensorrt"]
    assert not ok and "tensorrt" in why
    s = WorldSession(tiny_model, backend="tensorrt")   # a session asked for it still runs
    assert isinstance(s.backend, TorchBackend) and "tensorrt" in s.backend_message


def test_auto_on_cpu_picks_onnxruntime_and_says_why(tiny_model):
    backend, message = select_backend("auto", tiny_model)
    assert backend.name == "onnxruntime" and "auto" in message and "onnxruntime" in message
    if TRT_MISSING:
        assert "tensorrt" in message   # what was skipped is named
    avail = backend_availability("cpu")
    assert avail["auto"] == (True, "best available here: onnxruntime")


def test_unknown_backend_falls_back(tiny_model):
    backend, message = select_backend("warp-drive", tiny_model)
    assert isinstance(backend, TorchBackend) and "warp-drive" in message


def test_cuda_graphs_on_cpu_run_eagerly_and_say_so(tiny_model):
    b = TorchBackend(tiny_model, cuda_graphs=True)
    assert not b.cuda_graphs and "CUDA graphs" in b.reason
    z = example_inputs(tiny_model, batch=1)["decoder"][0]
    rgb, depth = b.decode(z)
    assert rgb.shape[1] == 3 and depth.shape[1] == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_match_eager(tiny_model_dir, first_view):
    from engine.model.world_model import WorldModel

    model = WorldModel.load(tiny_model_dir, "cuda")
    traj, rgb, depth = first_view
    out = {}
    for graphs in (False, True):
        s = WorldSession(model, memory=True, seed=1, backend=TorchBackend(model, cuda_graphs=graphs))
        s.observe(rgb, traj.frames[0], depth)
        out[graphs] = [s.step(p).frame.astype(np.int16) for p in traj.frames[1:11]]
    assert max(int(np.abs(a - b).max()) for a, b in zip(out[False], out[True])) <= 2


TRT_SKIP = (f"tensorrt does not import here ({TRT_MISSING})" if TRT_MISSING
            else None if torch.cuda.is_available() else "tensorrt imports but torch sees no CUDA GPU")


@pytest.mark.gpu
@pytest.mark.skipif(TRT_SKIP is not None, reason=TRT_SKIP or "")
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_engine_builds_runs_and_is_cached(tiny_model_dir, onnx_dir, tmp_path, fp16):
    from engine.backends.tensorrt_backend import TensorRTBackend
    from engine.model.world_model import WorldModel

    model = WorldModel.load(tiny_model_dir, "cuda")
    src = onnx_dir
    if fp16:
        src = tmp_path / "fp16"
        export_onnx(model, src, fp16=True)
    backend = TensorRTBackend(model, src, engine_dir=tmp_path / "engines")
    assert sorted(backend.built) == ["decoder", "encoder", "generator"]
    assert list((tmp_path / "engines").glob("timing-*.cache"))
    nets = build_networks(model)
    inputs = example_inputs(model, batch=2, device="cuda")
    tol = 5e-2 if fp16 else 1e-2   # TF32 / fp16 kernels
    with torch.no_grad():
        for name, call in (("encoder", backend.encode), ("generator", backend.generate), ("decoder", backend.decode)):
            ref, got = nets[name](*inputs[name]), call(*inputs[name])
            ref, got = (ref, got) if isinstance(ref, tuple) else ((ref,), (got,))
            for r, g in zip(ref, got):
                assert g.device.type == "cuda" and float((r - g).abs().max()) <= tol, name
    again = TensorRTBackend(model, src, engine_dir=tmp_path / "engines")
    assert again.built == []   # loaded from the engine cache
    s = WorldSession(model, backend=again)
    assert s.backend.name == "tensorrt"


def test_tensorrt_backend_refuses_cleanly_where_it_cannot_run(tiny_model):
    if TRT_MISSING is None and torch.cuda.is_available():
        pytest.skip("TensorRT can run here")
    from engine.backends.tensorrt_backend import TensorRTBackend

    with pytest.raises(BackendUnavailable, match="tensorrt"):
        TensorRTBackend(tiny_model)


# ---- CLI and bench ----------------------------------------------------------------------------

def test_cli_export_onnx_refuses_an_existing_dir_unless_overwrite(tiny_model_dir, tmp_path, capsys):
    from explorer.cli import main

    out = tmp_path / "export"
    args = ["export", "onnx", "--out", str(out), "--model", str(tiny_model_dir), "--no-check"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"encoder.onnx", "generator.onnx", "decoder.onnx", "manifest.json"}
    before = (out / "manifest.json").read_text()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "manifest.json").read_text() == before   # untouched
    assert main(args + ["--overwrite"]) == 0


def test_cli_export_onnx_int8_writes_and_checks_the_int8_decoder(tiny_model_dir, tmp_path, capsys, egl):
    import re

    from explorer.cli import main

    out = tmp_path / "export"
    assert main(["export", "onnx", "--out", str(out), "--model", str(tiny_model_dir), "--int8", "--fp16"]) == 2
    assert "--int8" in capsys.readouterr().err and not out.exists()
    assert main(["export", "onnx", "--out", str(out), "--model", str(tiny_model_dir), "--int8"]) == 0
    printed = capsys.readouterr().out
    assert "decoder.int8.onnx" in printed and "decoder convolutions in int8" in printed
    m = re.search(r"int8 decoder vs float32, PSNR over 48 views .*: median ([\d.]+) dB, lowest ([\d.]+) dB", printed)
    assert m and float(m[1]) >= float(m[2]) > 20, printed


def test_bench_backend_reports_fps_and_latency(tiny_model_dir, egl):
    from engine.bench.backend import bench_backend

    r = bench_backend("onnxruntime", frames=4, warmup=1, model_dir=tiny_model_dir)
    assert r["backend"] == "onnxruntime" and r["frames"] == 4
    assert r["fps"] > 0 and 0 < r["latency_ms_p50"] <= r["latency_ms_p99"]
