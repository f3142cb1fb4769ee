"""What every benchmark shares: the walk it times (an explore trajectory of an eval world from
one rendered observation), latency percentiles, and a description of the machine."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), so numbers from different machines
    are never compared as if they were one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict:
    info = {"cpu": cpu_model(), "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def percentiles(values: list[float]) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99))}


def explore_walk(size: int, fov_deg: float, frames: int, scene_seed: int):
    """An explore trajectory of `frames` poses in an eval world and its rendered first view
    (rgb, depth): the one real observation every benchmark walk starts from."""
    from engine.trajectory import make_trajectory
    from engine.world.levels import generate_level
    from engine.world.renderer import Renderer

    traj = make_trajectory(scene_seed, "explore", frames=frames, fov_deg=fov_deg, resolution=(size, size))
    r = Renderer(generate_level(scene_seed), size, size, fov_deg)
    rgb, depth = r.render(traj.frames[:1])
    r.close()
    return traj, rgb[0], depth[0]


def use_layout(sess, scene_seed: int, layout: bool = True):
    """Give a benchmark's session the level's scene layout, as the explorer runs it, when its model
    takes the layout and `layout` is asked for; returns the layout source (None: layout off)."""
    if not (layout and sess.model.takes_layout):
        return None
    from engine.model.layout_cells import SceneLayout
    from engine.world.levels import generate_level

    source = SceneLayout.for_model(generate_level(scene_seed), sess.model)
    sess.set_layout(True, source)
    return source
