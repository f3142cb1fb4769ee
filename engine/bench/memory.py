"""Memory benchmarks for `mirage bench`: our latent memory against an RGB point cloud,
how the memory's per-frame cost scales as it fills, and a long soak.

All three walk a real explore trajectory of an eval world with the real model
(WorldSession, memory on), so the points written are the ones a person walking
would write; only the first frame is a ground-truth observation.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from engine.bench.pointcloud import RGBPointCloudMemory
from engine.bench.walk import explore_walk, use_layout
from engine.rollout import rollout


def _c2w(pose) -> torch.Tensor:
    return torch.as_tensor(pose.c2w(), dtype=torch.float32)


def resident_bytes() -> int:
    """Current resident set size of this process (Linux /proc; peak RSS elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def bench_memory(model_dir: str | Path | None = None, frames: int = 400, capacity: int | None = None,
                 scene_seed: int = 1_000_007, device: str = "cpu", fill_frames: int = 4000,
                 layout: bool = True) -> dict:
    """Latent memory vs RGB point cloud on one walk, and the latent memory's scaling curve.

    Both memories store the same `frames` frames (the session's generated frames and the
    model's depth); bytes per stored frame are bytes in use over frames stored, measured
    before the latent memory is full (once full it stops growing at all). The latent walk
    then goes on alone, up to `fill_frames`, until the memory is full, so that the scaling
    curve reaches capacity (carving frees points, so filling takes more than `frames`).
    """
    from engine.session import WorldSession

    sess = WorldSession(model_dir, memory=True, capacity=capacity, seed=0, device=device)
    # With the layout on (as the explorer runs a model that takes it), memory lifts cells with its depth.
    source = use_layout(sess, scene_seed, layout)
    traj, rgb0, depth0 = explore_walk(sess.image_size, sess.fov_deg, max(frames, fill_frames), scene_seed)
    cloud = RGBPointCloudMemory(sess.image_size, sess.fov_deg, sess.device)
    cloud.write(rgb0, depth0, _c2w(traj.frames[0]))
    latent_read, cloud_read, scaling, per_frame_bytes = [], [], [], None
    full_frames = 0
    before = 0
    for i, [(_, res)] in rollout([("memory", sess)], traj.frames, 1, lambda i: (rgb0, depth0)):
        if res.observed:
            before = sess.memory.stats().points
            continue
        pose = res.pose
        compare = i < frames
        if not compare and full_frames >= 30:
            break
        if compare:   # the cloud does not depend on the session: reading it after the step times the same
            t0 = time.perf_counter()
            cloud.read(_c2w(pose), sess.model.encode)
            cloud_read.append(1e3 * (time.perf_counter() - t0))
        full_frames += before >= 0.98 * sess.memory.capacity
        if compare:
            latent_read.append(res.timings["memory_read"])
        scaling.append((before, res.timings["memory_read"] + res.timings["memory_write"]))
        if per_frame_bytes is None and res.memory["fill"] >= 0.9:
            per_frame_bytes = _latent_bytes_in_use(sess) / sess.memory.stats().writes
        if compare:
            cloud.write(res.frame, res.depth, _c2w(pose))
        before = sess.memory.stats().points   # points held before the next step
    if source is not None:   # its GL context is not needed past the walk
        source.close()
    if per_frame_bytes is None:                      # never reached 90 %: everything so far counts
        per_frame_bytes = _latent_bytes_in_use(sess) / sess.memory.stats().writes
    warm = slice(5, None)                             # first calls pay one-off allocation costs
    return {
        "frames": frames,
        "fill_frames": i,
        "capacity": sess.memory.capacity,
        "latent_bytes_per_frame": per_frame_bytes,
        "rgb_pointcloud_bytes_per_frame": cloud.bytes / cloud.frames,
        "latent_read_ms": float(np.mean(latent_read[warm])),
        "rgb_read_ms": float(np.mean(cloud_read[warm])),
        "rgb_read_ms_last": float(np.mean(cloud_read[-20:])),
        "rgb_pointcloud_points_end": cloud.count,
        "latent_points_end": sess.memory.stats().points,
        "scaling": scaling_curve(scaling[5:], sess.memory.capacity),
        "layout": "on" if source is not None else "off",
    }


def _latent_bytes_in_use(sess) -> float:
    st = sess.memory.stats()
    return st.bytes * st.points / st.capacity      # stats().bytes is the preallocated total


def scaling_curve(samples: list[tuple[int, float]], capacity: int) -> list[list[float]]:
    """Median read+write ms per frame at log-spaced fill levels from 1e3 points to capacity."""
    pts = np.array([p for p, _ in samples], dtype=np.float64)
    ms = np.array([m for _, m in samples], dtype=np.float64)
    edges = np.unique(np.geomspace(1e3, capacity, 8).round())
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (pts >= lo) & (pts < hi) if hi < capacity else (pts >= lo)
        if sel.sum() >= 3:
            out.append([float(np.median(pts[sel])), float(np.median(ms[sel]))])
    full = pts >= 0.98 * capacity
    if full.sum() >= 3:
        out.append([float(np.median(pts[full])), float(np.median(ms[full]))])
    return out


def plot_scaling(curve: list[list[float]], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([p for p, _ in curve], [m for _, m in curve], "o-")
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())   # log-axis minor labels overlap at this size
    ax.set_ylim(bottom=0)
    ax.set_xlabel("points in memory")
    ax.set_ylabel("read + write ms / frame")
    ax.set_title("latent memory cost as it fills")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def soak(model_dir: str | Path | None = None, frames: int = 20_000, window: int = 200, capacity: int | None = None,
         scene_seed: int = 1_000_007, device: str = "cpu", progress: bool = True, layout: bool = True) -> dict:
    """Walk `frames` generated frames with memory on: resident memory and frames/s at start and end."""
    from tqdm import tqdm

    from engine.session import WorldSession

    sess = WorldSession(model_dir, memory=True, capacity=capacity, seed=0, device=device)
    source = use_layout(sess, scene_seed, layout)
    traj, rgb0, depth0 = explore_walk(sess.image_size, sess.fov_deg, frames + 1, scene_seed)
    times, full_at, rss_full = [], None, None
    rss_start = resident_bytes()
    walk = rollout([("soak", sess)], traj.frames, 1, lambda i: (rgb0, depth0))
    for i, [(_, res)] in tqdm(walk, total=len(traj.frames), desc="soak", disable=not progress):
        if res.observed:
            continue
        i -= 1   # generated frames count from 0
        times.append(res.timings["wall"] / 1e3)
        if full_at is None and res.memory["fill"] >= 0.98:
            full_at, rss_full = i, resident_bytes()
        if not res.finite:
            raise RuntimeError(f"soak: frame {i} is not finite")
    rss_end = resident_bytes()
    w = min(window, max(1, len(times) // 4))
    fps_start = w / sum(times[:w]) if full_at is None else w / sum(times[full_at:full_at + w])
    fps_end = w / sum(times[-w:])
    if source is not None:
        source.close()
    return {
        "frames": len(times),
        "memory_full_at_frame": full_at,
        "rss_start_bytes": rss_start,
        "rss_when_full_bytes": rss_full,
        "rss_end_bytes": rss_end,
        "rss_growth_after_full": (rss_end - rss_full) / rss_full if rss_full else None,
        "fps_start": fps_start,
        "fps_end": fps_end,
        "fps_drift": (fps_end - fps_start) / fps_start,
        "layout": "on" if source is not None else "off",
    }
