"""Frames/s and step latency of WorldSession.step per backend (for `mirage bench` and docs/BACKENDS.md).

    bench_backend("onnxruntime", frames=100)  ->  {"fps", "latency_ms_p50", "latency_ms_p99", ...}
    bench_interleaved(["torch", "onnxruntime"], frames=100)  ->  {name: {...}, ...}

The walk is an explore trajectory of an eval world from one rendered observation,
memory on, at the model's resolution and default steps: the whole step (scene layout for a
model that takes it, memory read, generator steps, decode, memory write) is timed, as a person walking would see it.
Warm-up frames (first-call graph optimisation, allocator growth, CUDA-graph capture)
are excluded. Every backend sees the same poses and the same noise seed.

bench_interleaved steps one session per backend in turn on each pose, so on a shared
machine (other jobs on the same cores) every backend sees the same load; separate
runs minutes apart can differ by 2x on such a machine.

Besides the backend names, "onnxruntime-fp32" times ONNX Runtime with its float32 decoder (the
int8 one is the default: engine/backends/quantize.py), to show what the int8 trunk gains.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.backends.ort_backend import FLOAT_DECODER_NAME

BENCH_SCENE = 1_000_007   # an eval-range world


def bench_family(name: str) -> tuple[str, bool]:
    """A bench name -> (the backend family select_backend takes, whether ONNX Runtime runs the int8 decoder).
    ONNX Runtime with the float32 decoder is benched under the label that backend then has."""
    return ("onnxruntime", False) if name == FLOAT_DECODER_NAME else (name, True)


def _stats(lat: list[float], stages: dict[str, list[float]]) -> dict:
    from engine.bench.walk import percentiles

    a = np.asarray(lat)
    return {"fps": float(1e3 * len(a) / a.sum()), "latency_ms_p50": float(np.percentile(a, 50)),
            "latency_ms_p99": float(np.percentile(a, 99)), "latency_ms_mean": float(a.mean()), "frames": len(a),
            "stages_ms": {k: percentiles(v) for k, v in stages.items()}}


def bench_interleaved(backend_names: list[str], frames: int = 100, model_dir: str | Path | None = None,
                      steps: int | None = None, warmup: int = 10, memory: bool = True, device: str = "cpu",
                      scene_seed: int = BENCH_SCENE, cuda_graphs: bool = False,
                      layout: bool = True) -> dict[str, dict]:
    """bench_backend for several backends at once, taking turns pose by pose (see the module doc).
    layout: sessions of a model that takes the scene layout get it, each its own source, so every
    backend pays the layout pass (a shared source would draw it once a pose)."""
    from engine.backends.select import select_backend
    from engine.bench.walk import explore_walk
    from engine.model.world_model import WorldModel
    from engine.rollout import rollout
    from engine.session import WorldSession

    model = WorldModel.load(model_dir, device)
    traj, rgb, depth = explore_walk(model.image_size, model.cfg.fov_deg, frames + warmup + 1, scene_seed)
    from engine.model.layout_cells import SceneLayout
    from engine.world.levels import generate_level

    use_layout = layout and model.takes_layout
    level = generate_level(scene_seed) if use_layout else None
    sessions, messages, sources = [], {}, []
    for name in backend_names:
        family, int8 = bench_family(name)
        backend, messages[name] = select_backend(family, model, cuda_graphs=cuda_graphs, int8=int8)
        src = SceneLayout.for_model(level, model) if use_layout else None
        sources += [src] if src is not None else []
        sessions.append((name, WorldSession(model, memory=memory, steps=steps, seed=0, backend=backend, layout=src)))
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    lat: dict[str, list[float]] = {n: [] for n, _ in sessions}
    stages: dict[str, dict[str, list[float]]] = {n: {} for n, _ in sessions}
    # The sessions take turns pose by pose, so on a shared machine every backend sees the same load.
    for i, results in rollout(sessions, traj.frames, 1, lambda i: (rgb, depth), sync):
        if i <= warmup:   # the observation, then the warm-up frames
            continue
        for name, res in results:
            lat[name].append(res.timings["wall"])
            for k, v in res.timings.items():
                if k != "wall":
                    stages[name].setdefault(k, []).append(v)
    out = {}
    for name, s in sessions:
        out[name] = {**_stats(lat[name], stages[name]), "backend": s.backend.name, "reason": s.backend.reason,
                     "message": messages[name], "steps": s.steps, "image_size": s.image_size, "memory": memory,
                     "memory_points_end": s.memory.stats().points, "torch_threads": torch.get_num_threads(),
                     "layout": "on" if use_layout else "off"}
    for src in sources:
        src.close()
    return out


def bench_backend(backend_name: str, frames: int = 100, model_dir: str | Path | None = None, steps: int | None = None,
                  warmup: int = 10, memory: bool = True, device: str = "cpu", scene_seed: int = BENCH_SCENE,
                  cuda_graphs: bool = False, layout: bool = True) -> dict:
    """Time `frames` generated frames on `backend_name` ("torch", "onnxruntime", "tensorrt", "auto").

    Returns fps (frames / total wall time of the timed steps), latency_ms_p50 and
    latency_ms_p99 of one step, per-stage mean/p50/p99 (`stages_ms`), and what ran: the backend's name and
    reason (it may be a fallback: check `backend`), steps, image size, torch threads.
    """
    return bench_interleaved([backend_name], frames, model_dir, steps, warmup, memory, device, scene_seed,
                             cuda_graphs, layout)[backend_name]


def format_backend_table(results: dict[str, dict]) -> str:
    """name -> bench result, as a small text table with the per-stage medians."""
    lines = [f"{'backend':22s} {'frames/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}   stage medians (ms)"]
    for name, r in results.items():
        ran = r.get("backend", name)
        label = name if ran == name else f"{name} ({ran})"
        stages = " ".join(f"{k} {v['p50']:.1f}" for k, v in r.get("stages_ms", {}).items() if k != "total")
        lines.append(f"{label:22s} {r['fps']:9.1f} {r['latency_ms_p50']:8.1f} {r['latency_ms_p99']:8.1f}   {stages}")
    return "\n".join(lines)


if __name__ == "__main__":   # python -m engine.bench.backend torch onnxruntime --frames 100 --threads 2
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("backends", nargs="+", help="torch, onnxruntime, tensorrt, auto")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (ONNX Runtime uses as many)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--separate", action="store_true", help="one backend after the other instead of interleaved")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.separate:
        res = {b: bench_backend(b, args.frames, args.model, args.steps, args.warmup, device=args.device)
               for b in args.backends}
    else:
        res = bench_interleaved(args.backends, args.frames, args.model, args.steps, args.warmup, device=args.device)
    print(format_backend_table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
