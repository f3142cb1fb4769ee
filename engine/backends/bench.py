"""Frames/s and step latency of WorldSession.step per backend (for `mirage bench` and docs/BACKENDS.md).

    bench_backend("onnxruntime", frames=100)  ->  {"fps", "latency_ms_p50", "latency_ms_p99", ...}

The walk is an explore trajectory of an eval world from one rendered observation,
memory on, at the model's resolution and default steps: the whole step (memory read,
generator steps, decode, memory write) is timed, as a person walking would see it.
Warm-up frames (first-call graph optimisation, allocator growth, CUDA-graph capture)
are excluded. Every backend sees the same poses and the same noise seed.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

BENCH_SCENE = 1_000_007   # an eval-range world


def bench_backend(backend_name: str, frames: int = 100, model_dir: str | Path | None = None, steps: int | None = None,
                  warmup: int = 10, memory: bool = True, device: str = "cpu", scene_seed: int = BENCH_SCENE,
                  cuda_graphs: bool = False, onnx_dir: str | Path | None = None) -> dict:
    """Time `frames` generated frames on `backend_name` ("torch", "onnxruntime", "tensorrt", "auto").

    Returns fps (frames / total wall time of the timed steps), latency_ms_p50 and
    latency_ms_p99 of one step, plus what ran: the backend's name and reason (it
    may be a fallback: check `backend`), steps, image size and torch threads.
    """
    from engine.backends.select import select_backend
    from engine.model.world_model import WorldModel
    from engine.session import WorldSession
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    model = WorldModel.load(model_dir, device)
    backend, message = select_backend(backend_name, model, onnx_dir=onnx_dir, cuda_graphs=cuda_graphs)
    sess = WorldSession(model, memory=memory, steps=steps, seed=0, backend=backend)
    size = sess.image_size
    traj = make_trajectory(scene_seed, "explore", frames=frames + warmup + 1, fov_deg=sess.fov_deg,
                           resolution=(size, size))
    r = Renderer(generate_level(scene_seed), size, size, sess.fov_deg)
    rgb, depth = r.render(traj.frames[:1])
    r.close()
    sess.observe(rgb[0], traj.frames[0], depth[0])
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    lat: list[float] = []
    for i, pose in enumerate(traj.frames[1:]):
        t0 = time.perf_counter()
        sess.step(pose)
        sync()
        if i >= warmup:
            lat.append(1e3 * (time.perf_counter() - t0))
    a = np.asarray(lat)
    return {"fps": float(1e3 * len(a) / a.sum()), "latency_ms_p50": float(np.percentile(a, 50)),
            "latency_ms_p99": float(np.percentile(a, 99)), "latency_ms_mean": float(a.mean()),
            "frames": len(a), "backend": backend.name, "reason": backend.reason, "message": message,
            "steps": sess.steps, "image_size": size, "memory": memory, "torch_threads": torch.get_num_threads()}


def format_backend_table(results: dict[str, dict]) -> str:
    """name -> bench_backend result, as a small text table."""
    lines = [f"{'backend':22s} {'frames/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}"]
    for name, r in results.items():
        ran = r.get("backend", name)
        label = name if ran == name else f"{name} ({ran})"
        lines.append(f"{label:22s} {r['fps']:9.1f} {r['latency_ms_p50']:8.1f} {r['latency_ms_p99']:8.1f}")
    return "\n".join(lines)


if __name__ == "__main__":   # python -m engine.backends.bench torch onnxruntime --frames 100 --threads 2
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("backends", nargs="+")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    res = {b: bench_backend(b, args.frames, args.model, args.steps, args.warmup) for b in args.backends}
    print(format_backend_table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
