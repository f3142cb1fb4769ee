"""`mirage bench --render`: the ground-truth renderer and the scene layout, frames/s per batch size.

Speed is measured here and never by timed unit tests. Each benchmark warms up
first (shader compilation, first-touch allocations), then times repeated calls
and reports throughput plus per-call latency percentiles. The layout (engine/world/layout.py)
is a stage of every layout-conditioned frame, so its own cost is reported beside the renderer's.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np


def _gl_info(renderer) -> dict:
    try:
        with renderer.ctx:   # the context must be current for GL_RENDERER to be read
            info = renderer.ctx.info
        return {"gl_renderer": str(info.get("GL_RENDERER", "?")), "gl_version": str(info.get("GL_VERSION", "?"))}
    except Exception:  # noqa: BLE001 - informational only
        return {}


def bench_render(frames: int = 512, resolution: tuple[int, int] = (128, 128), fov: float = 70.0,
                 batch_sizes: Sequence[int] = (1, 64), scene_seed: int = 1_000_000, warmup: int = 2,
                 rng_seed: int = 0, what: str = "render") -> dict:
    """Throughput (frames/s) over `frames` walk poses per batch size of the ground-truth renderer
    (what="render": RGB and depth) or the scene layout (what="layout": depth, normals, classes).

    The poses are a training-style walk through the level of `scene_seed`, drawn in
    consecutive batches; time covers drawing and reading back into numpy.
    """
    from engine.bench.walk import machine_info
    from engine.train.walks import sample_walk_poses
    from engine.world.layout import LayoutRenderer
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    if what not in ("render", "layout"):
        raise ValueError(f"what must be 'render' or 'layout', got {what!r}")

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    batch_sizes = [int(b) for b in batch_sizes]
    if not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {batch_sizes}")
    w, h = (int(v) for v in resolution)
    level = generate_level(scene_seed)
    poses = sample_walk_poses(level, frames, np.random.default_rng(rng_seed))
    renderer = Renderer(level, w, h, fov) if what == "render" else LayoutRenderer(level, w, h, fov)
    draw = renderer.render if what == "render" else renderer.layout
    rows = []
    try:
        for b in batch_sizes:
            for _ in range(max(0, warmup)):
                draw(poses[:b])
            lat = []
            t0 = time.perf_counter()
            for i in range(0, frames, b):
                t = time.perf_counter()
                draw(poses[i:i + b])
                lat.append(time.perf_counter() - t)
            total = time.perf_counter() - t0
            lat_ms = np.asarray(lat) * 1e3
            rows.append({
                "batch": b,
                "frames": frames,
                "seconds": total,
                "fps": frames / total,
                "ms_per_frame": 1e3 * total / frames,
                "batch_ms_p50": float(np.percentile(lat_ms, 50)),
                "batch_ms_p99": float(np.percentile(lat_ms, 99)),
            })
        gl = _gl_info(renderer)
    finally:
        renderer.close()
    return {
        "benchmark": what,
        "resolution": [w, h],
        "fov_deg": float(fov),
        "scene_seed": int(scene_seed),
        "warmup_batches": int(warmup),
        "results": rows,
        **gl,
        "machine": machine_info(),
    }


def format_render_table(result: dict) -> str:
    w, h = result["resolution"]
    lines = [f"{result['benchmark']}  {w}x{h}  fov {result['fov_deg']:g}  scene {result['scene_seed']}"
             + (f"  [{result['gl_renderer']}]" if "gl_renderer" in result else "")]
    lines.append(f"{'batch':>6} {'frames':>7} {'frames/s':>10} {'ms/frame':>9} {'batch p50 ms':>13} {'batch p99 ms':>13}")
    for r in result["results"]:
        lines.append(f"{r['batch']:>6} {r['frames']:>7} {r['fps']:>10.1f} {r['ms_per_frame']:>9.3f} "
                     f"{r['batch_ms_p50']:>13.2f} {r['batch_ms_p99']:>13.2f}")
    return "\n".join(lines)
