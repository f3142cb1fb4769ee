"""`mirage bench`'s memory side on a real tiny model and a real rendered world: the JSON
keys the issue names, the RGB point-cloud baseline really rendering, the scaling curve."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from model_fixtures import tiny_model_dir  # noqa: F401  (pytest fixture)

from engine.bench.pointcloud import BYTES_PER_POINT, RGBPointCloudMemory
from engine.camera import Pose
from explorer.cli import main


def test_pointcloud_baseline_renders_a_stored_view_back_exactly():
    # A textured plane 3 m in front of the camera: every pixel stored, rendered back from the
    # same pose, must come back pixel for pixel; from a pose turned away, nothing is covered.
    g = np.random.default_rng(0)
    rgb = g.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    depth = np.full((32, 32), 3.0, np.float32)
    cloud = RGBPointCloudMemory(32, 70.0)
    c2w = torch.as_tensor(Pose((0.0, 1.5, 0.0)).c2w(), dtype=torch.float32)
    cloud.write(rgb, depth, c2w)
    assert cloud.count == 32 * 32 and cloud.bytes == 32 * 32 * BYTES_PER_POINT
    img, cov = cloud.render(c2w)
    assert cov.all() and np.array_equal(img.numpy(), rgb)
    back = torch.as_tensor(Pose((0.0, 1.5, 0.0), yaw=180.0).c2w(), dtype=torch.float32)
    assert not cloud.render(back)[1].any()


@pytest.mark.slow
def test_bench_memory_json(tiny_model_dir, tmp_path, capsys, egl):  # noqa: F811
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(tiny_model_dir), "--no-step", "--memory-frames", "40",
                 "--json", str(out), "--threads", "2"]) == 0
    m = json.loads(out.read_text())["memory"]
    for key in ("latent_bytes_per_frame", "rgb_pointcloud_bytes_per_frame", "latent_read_ms", "rgb_read_ms",
                "scaling"):
        assert key in m
    # The tiny model is 64x64 with an 8x8 latent grid: 4096 pixels vs at most 64 cells a frame.
    assert m["rgb_pointcloud_bytes_per_frame"] > 20 * m["latent_bytes_per_frame"] > 0
    assert m["rgb_pointcloud_points_end"] > 30 * 64 * 64 * 0.5
    assert m["scaling"] and all(p >= 1000 and ms > 0 for p, ms in m["scaling"])
    assert (tmp_path / "bench.scaling.png").stat().st_size > 1000
    assert "fewer" in capsys.readouterr().out
    assert m["layout"] == "on", "the tiny generator takes the layout: memory is benched as the explorer runs it"
    off = tmp_path / "off.json"
    assert main(["bench", "--model", str(tiny_model_dir), "--no-step", "--memory-frames", "20", "--layout", "off",
                 "--json", str(off), "--threads", "2"]) == 0
    assert json.loads(off.read_text())["memory"]["layout"] == "off"
