"""Pose integration for walking: framework-neutral actions in, camera poses out.

The GUI turns key codes into `Action`s (explorer/keymap.py is the only place that
knows Qt key codes); this module never sees Qt. Motion is integrated from the time
that actually passed, so speeds are metres per second and degrees per second whatever
the frame rate of the model or the GUI timer. Walking is horizontal (pitch does not
lift you off the floor) and goes through the level's collision map, which slides the
body along walls and furniture instead of stopping dead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Protocol

from engine.camera import PITCH_LIMIT_DEG, Pose, wrap_degrees


class Action(str, Enum):
    # Held: active while the key is down.
    FORWARD = "forward"
    BACK = "back"
    STRAFE_LEFT = "strafe_left"
    STRAFE_RIGHT = "strafe_right"
    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    LOOK_UP = "look_up"
    LOOK_DOWN = "look_down"
    FAST = "fast"
    # Triggers: fire once per press.
    HELP = "help"
    PAUSE = "pause"
    RECORD = "record"
    MEMORY = "memory"
    LAYOUT = "layout"
    COMPARE = "compare"
    GROUND_TRUTH = "ground_truth"
    NEW_WORLD = "new_world"
    HOME = "home"
    CAPTURE_MOUSE = "capture_mouse"
    RELEASE = "release"          # Esc: release the mouse, close the help overlay
    SCREENSHOT = "screenshot"


HELD_ACTIONS = frozenset({Action.FORWARD, Action.BACK, Action.STRAFE_LEFT, Action.STRAFE_RIGHT, Action.TURN_LEFT,
                          Action.TURN_RIGHT, Action.LOOK_UP, Action.LOOK_DOWN, Action.FAST})


@dataclass
class MotionConfig:
    walk_speed: float = 1.4          # m/s, a walking pace
    fast_factor: float = 2.5         # Shift multiplies walking and turning speed
    turn_speed: float = 90.0         # deg/s for the arrow keys
    pitch_speed: float = 60.0        # deg/s for looking up and down with keys
    mouse_deg_per_px: float = 0.2    # mouse look sensitivity
    max_dt: float = 0.25             # s; a stalled GUI must not teleport the camera on its next tick
    path_step: float = 0.05          # m between recorded points of the walked path


class Mover(Protocol):
    """What the controller needs from engine.world.collision.CollisionMap."""

    def move(self, position: tuple[float, float, float], delta_xz: tuple[float, float]) -> tuple[float, float, float]:
        ...


class Controller:
    """Integrates held actions and mouse deltas into a pose, with collision."""

    def __init__(self, collision: Mover | None, start: Pose, config: MotionConfig | None = None) -> None:
        self.cfg = config or MotionConfig()
        self.collision = collision
        self.start = start
        self.pose = start
        self.path: list[tuple[float, float]] = [(start.position[0], start.position[2])]

    # ---- motion -----------------------------------------------------------------------
    def advance(self, dt: float, held: Iterable[Action]) -> Pose:
        """Move and turn for `dt` seconds with the given held actions; returns the new pose."""
        held = set(held)
        dt = min(max(float(dt), 0.0), self.cfg.max_dt)
        if dt == 0.0 or not held:
            return self.pose
        fast = self.cfg.fast_factor if Action.FAST in held else 1.0
        yaw, pitch = self.pose.yaw, self.pose.pitch
        turn = (Action.TURN_LEFT in held) - (Action.TURN_RIGHT in held)     # positive yaw turns left
        yaw = wrap_degrees(yaw + turn * self.cfg.turn_speed * fast * dt)
        tilt = (Action.LOOK_UP in held) - (Action.LOOK_DOWN in held)
        pitch = _clamp_pitch(pitch + tilt * self.cfg.pitch_speed * fast * dt)
        fwd = (Action.FORWARD in held) - (Action.BACK in held)
        side = (Action.STRAFE_RIGHT in held) - (Action.STRAFE_LEFT in held)
        position = self.pose.position
        if fwd or side:
            # Walk along the heading *before* this tick's turn so a diagonal key combo is exact.
            dx, dz = _ground_direction(self.pose.yaw, fwd, side)
            step = self.cfg.walk_speed * fast * dt
            position = self._move(position, (dx * step, dz * step))
        self.pose = Pose(position, yaw, pitch)
        self._record_path()
        return self.pose

    def look(self, dx_px: float, dy_px: float) -> Pose:
        """Mouse look: dragging right turns right, dragging up looks up."""
        k = self.cfg.mouse_deg_per_px
        self.pose = Pose(self.pose.position, wrap_degrees(self.pose.yaw - dx_px * k),
                         _clamp_pitch(self.pose.pitch - dy_px * k))
        return self.pose

    def _move(self, position: tuple[float, float, float], delta: tuple[float, float]) -> tuple[float, float, float]:
        if self.collision is None:
            return (position[0] + delta[0], position[1], position[2] + delta[1])
        return self.collision.move(position, delta)

    # ---- jumps ------------------------------------------------------------------------
    def home(self) -> Pose:
        """Back to the start pose; the path keeps the jump so the minimap shows it."""
        self.pose = self.start
        self.path.append((self.start.position[0], self.start.position[2]))
        return self.pose

    def set_pose(self, pose: Pose) -> Pose:
        """Put the camera at a pose from elsewhere (autopilot); it is recorded in the path."""
        self.pose = pose
        self._record_path()
        return self.pose

    def _record_path(self) -> None:
        x, z = self.pose.position[0], self.pose.position[2]
        lx, lz = self.path[-1]
        if math.hypot(x - lx, z - lz) >= self.cfg.path_step:
            self.path.append((x, z))
            if len(self.path) > 50_000:    # hours of walking; keep the minimap's cost bounded
                del self.path[:10_000]


def _ground_direction(yaw_deg: float, forward: int, side: int) -> tuple[float, float]:
    """Unit xz direction for forward/back and strafe input at a heading (yaw 0 looks along -z)."""
    y = math.radians(yaw_deg)
    fx, fz = -math.sin(y), -math.cos(y)      # camera forward on the ground
    rx, rz = math.cos(y), -math.sin(y)       # camera right on the ground
    dx, dz = forward * fx + side * rx, forward * fz + side * rz
    n = math.hypot(dx, dz)
    return (dx / n, dz / n) if n > 0 else (0.0, 0.0)


def _clamp_pitch(p: float) -> float:
    return max(-PITCH_LIMIT_DEG, min(PITCH_LIMIT_DEG, p))


def start_pose(spawn: tuple[float, float, float]) -> Pose:
    """The start pose at a spawn point: looking along -z (yaw 0), level."""
    return Pose(tuple(float(v) for v in spawn), 0.0, 0.0)
