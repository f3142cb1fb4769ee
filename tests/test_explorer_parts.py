"""Explorer parts that need no window: motion timing, backend choice, the minimap frustum, CLI errors.

The window itself (walking, modes, compare, recording, threads) is tested in test_explorer.py.
"""
from __future__ import annotations

import math

import pytest

from engine.camera import Pose
from explorer.controller import Action, Controller, MotionConfig
from explorer.settings import backend_status, resolve_backend


def test_speed_does_not_depend_on_the_tick_rate():
    for held in ({Action.FORWARD, Action.STRAFE_LEFT}, {Action.TURN_LEFT, Action.LOOK_UP}):
        a, b = Controller(None, Pose((0, 1.6, 0))), Controller(None, Pose((0, 1.6, 0)))
        for _ in range(100):
            a.advance(0.01, held)
        for _ in range(5):
            b.advance(0.2, held)
        assert a.pose.position == pytest.approx(b.pose.position) and a.pose.yaw == pytest.approx(b.pose.yaw)
        assert a.pose.pitch == pytest.approx(b.pose.pitch)
    assert a.pose.yaw == pytest.approx(90.0) and a.pose.pitch == pytest.approx(60.0)
    diagonal = Controller(None, Pose((0, 1.6, 0)))
    diagonal.advance(0.2, {Action.FORWARD, Action.STRAFE_LEFT})   # diagonals are not faster
    assert math.dist(diagonal.pose.position, (0, 1.6, 0)) == pytest.approx(1.4 * 0.2)
    stalled = Controller(None, Pose((0, 1.6, 0)), MotionConfig(max_dt=0.25))
    stalled.advance(5.0, {Action.FORWARD})               # a 5 s GUI stall must not teleport
    assert stalled.pose.position[2] == pytest.approx(-0.35)


def test_bad_autopilot_file_is_a_clean_error(tmp_path, capsys):
    from explorer.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nope"}')
    assert main(["explore", "--autopilot", str(bad), "--max-frames", "3"]) == 2
    assert "mirage: error:" in capsys.readouterr().err


def test_backends_listed_and_missing_ones_fall_back_to_torch():
    status = backend_status()
    assert set(status) == {"auto", "torch", "onnxruntime", "tensorrt"} and status["torch"][0]
    assert resolve_backend("torch") == ("torch", None)
    used, why = resolve_backend("tensorrt")
    assert used == "torch" and "tensorrt" in why and "using torch" in why


def test_frustum_points_along_the_view():
    from explorer.minimap import frustum_outline

    xs, ys = frustum_outline(0.0, 0.0, 0.0, 70.0, length=1.0)   # yaw 0 looks along -z: up the map
    assert ys[1] > 0.5 and ys[2] > 0.5 and xs[1] < 0 < xs[2]
    xs, ys = frustum_outline(0.0, 0.0, 90.0, 70.0, length=1.0)  # yaw 90 looks along -x: left
    assert xs[1] < -0.5 and xs[2] < -0.5
