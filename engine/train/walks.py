"""Training camera paths: continuous walks that keep revisiting places.

The world model has to learn what a place looks like when the camera comes back to it, so
training paths are not random poses: they are continuous walks made of the moves a person
makes -- turning on the spot, going somewhere and coming back the same way, walking a loop,
wandering, crossing the level -- which all revisit earlier views. Only numpy (and the
collision map) is imported, so `mirage dataset` starts fast.
"""
from __future__ import annotations

import math

import numpy as np

from engine.camera import Pose, wrap_degrees

# A person walks ~1.4 m/s and turns 60-180 deg/s; at 15 fps that is ~0.09 m and 4-12 deg a frame.
# Training walks vary around those so the model sees slow and brisk motion.
STEP_RANGE = (0.05, 0.16)      # metres per frame
TURN_RANGE = (4.0, 12.0)       # degrees per frame
PITCH_LIMIT = 20.0             # degrees; people mostly look ahead


def _heading_yaw(dx: float, dz: float) -> float:
    """Yaw that looks along (dx, dz): yaw 0 looks along -z, positive turns left."""
    return math.degrees(math.atan2(-dx, -dz))


def _truncate(points: np.ndarray, max_len: float) -> np.ndarray:
    """The first `max_len` metres of a polyline (points on a free path stay free)."""
    out, left = [points[0]], max_len
    for a, b in zip(points[:-1], points[1:]):
        seg = float(np.hypot(*(b - a)))
        if seg >= left:
            out.append(a + (b - a) * (left / seg) if seg > 0 else b)
            break
        out.append(b)
        left -= seg
    return np.asarray(out)


class _Walker:
    """Builds one continuous walk; every behaviour starts where the last one ended."""

    def __init__(self, level, cmap, rng: np.random.Generator, start_xz, yaw: float) -> None:
        self.level, self.cmap, self.rng = level, cmap, rng
        self.xz = np.asarray(start_xz, dtype=np.float64)
        self.yaw = float(yaw)
        self.pitch = 0.0
        self.pitch_target = 0.0
        self.step = float(rng.uniform(*STEP_RANGE))
        self.turn = float(rng.uniform(*TURN_RANGE))
        self.poses: list[Pose] = []

    def _emit(self) -> None:
        # Pitch drifts smoothly towards targets re-drawn now and then, independent of the path.
        if self.rng.random() < 0.03:
            self.pitch_target = float(np.clip(self.rng.normal(0.0, 8.0), -PITCH_LIMIT, PITCH_LIMIT))
        self.pitch += float(np.clip(self.pitch_target - self.pitch, -1.5, 1.5))
        y = float(self.level.eye_height)
        self.poses.append(Pose((float(self.xz[0]), y, float(self.xz[1])), wrap_degrees(self.yaw), self.pitch))

    def turn_to(self, yaw: float) -> None:
        delta = wrap_degrees(yaw - self.yaw)
        self.turn_by(delta)

    def turn_by(self, delta: float) -> None:
        n = max(1, int(math.ceil(abs(delta) / self.turn)))
        start = self.yaw
        for k in range(1, n + 1):
            self.yaw = start + delta * k / n
            self._emit()

    def follow(self, points: np.ndarray) -> None:
        """Walk along a polyline of (x, z) points, turning first where a corner is sharp."""
        for p in points:
            p = np.asarray(p, dtype=np.float64)
            d = p - self.xz
            dist = float(np.hypot(*d))
            if dist < 1e-6:
                continue
            want = _heading_yaw(d[0], d[1])
            if abs(wrap_degrees(want - self.yaw)) > 45.0:  # a sharp corner: turn on the spot first
                self.turn_to(want)
            n = max(1, int(math.ceil(dist / self.step)))
            start = self.xz.copy()
            for k in range(1, n + 1):
                self.xz = start + d * k / n
                # Ease into the heading, never faster than the turn rate.
                self.yaw += float(np.clip(wrap_degrees(want - self.yaw), -self.turn, self.turn))
                self._emit()

    def path_to(self, goal) -> np.ndarray | None:
        try:
            path = self.cmap.shortest_path(tuple(self.xz), tuple(goal))
        except ValueError:  # unreachable, or an end point not free: do something else instead
            return None
        pts = np.asarray(path, dtype=np.float64)  # [(x, z), ...] from the current point to the goal
        return pts if pts.ndim == 2 and len(pts) else None

    # Behaviours -------------------------------------------------------------

    def look_around(self) -> None:
        """A full turn, or a sweep and back: either way the first view comes round again."""
        sign = 1.0 if self.rng.random() < 0.5 else -1.0
        if self.rng.random() < 0.5:
            self.turn_by(sign * 360.0)
        else:
            sweep = sign * float(self.rng.uniform(90.0, 270.0))
            self.turn_by(sweep)
            self.turn_by(-sweep)

    def nearby_path(self, radius: float) -> np.ndarray | None:
        """A walk to a random free point at most about `radius` metres away along the path,
        so that trips last seconds and come back while the start is still fresh."""
        best, best_len = None, math.inf
        for _ in range(16):
            goal = self.cmap.random_free_point(self.rng)
            if float(np.hypot(goal[0] - self.xz[0], goal[1] - self.xz[1])) > radius:
                continue
            path = self.path_to(goal)
            if path is None:
                continue
            length = float(np.linalg.norm(np.diff(np.vstack([self.xz, path]), axis=0), axis=1).sum())
            if 0.8 <= length <= 1.5 * radius:
                return path
            if 0.8 <= length < best_len:
                best, best_len = path, length
        return best

    def come_back(self, start: np.ndarray, start_yaw: float) -> None:
        """Return to `start` and face the way we faced there: the same view, seen again."""
        back = self.path_to(start)
        if back is not None:
            self.follow(back)
        self.turn_to(start_yaw)

    def out_and_back(self) -> None:
        start, yaw = self.xz.copy(), self.yaw
        path = self.nearby_path(float(self.rng.uniform(1.5, 4.0)))
        if path is None:
            return self.wander()
        self.follow(path)
        if self.rng.random() < 0.5:
            self.look_around()
        else:
            self.turn_by(float(self.rng.choice([-180.0, 180.0])))
        self.come_back(start, yaw)

    def loop(self) -> None:
        start, yaw = self.xz.copy(), self.yaw
        for _ in range(int(self.rng.integers(2, 4))):
            path = self.nearby_path(float(self.rng.uniform(1.5, 3.0)))
            if path is not None:
                self.follow(path)
        self.come_back(start, yaw)

    def travel(self) -> None:
        """Head towards somewhere anywhere in the level (often another room), up to ~10 m of it:
        new places to remember, without one trip eating a whole scene's frames."""
        path = self.path_to(self.cmap.random_free_point(self.rng))
        if path is not None:
            self.follow(_truncate(np.vstack([self.xz, path]), float(self.rng.uniform(4.0, 10.0))))
        else:
            self.wander()

    def wander(self) -> None:
        heading = self.yaw
        for _ in range(int(self.rng.integers(20, 60))):
            heading += float(self.rng.normal(0.0, 0.6 * self.turn))
            rad = math.radians(heading)
            delta = np.array([-math.sin(rad), -math.cos(rad)]) * self.step
            pos = (float(self.xz[0]), float(self.level.eye_height), float(self.xz[1]))
            new = np.asarray(self.cmap.move(pos, tuple(delta)), dtype=np.float64)[[0, 2]]
            if float(np.hypot(*(new - self.xz))) < 0.25 * self.step:  # blocked: turn away
                heading += float(self.rng.choice([-1.0, 1.0])) * float(self.rng.uniform(60.0, 150.0))
            self.xz = new
            self.yaw += float(np.clip(wrap_degrees(heading - self.yaw), -self.turn, self.turn))
            self._emit()

    def run(self, n: int) -> list[Pose]:
        behaviours = (self.look_around, self.out_and_back, self.loop, self.wander, self.travel)
        weights = np.array([0.2, 0.3, 0.2, 0.15, 0.15])
        guard = 0
        while len(self.poses) < n:
            before = len(self.poses)
            behaviours[self.rng.choice(len(behaviours), p=weights)]()
            # Speed changes between behaviours, as a person's does.
            self.step = float(np.clip(self.step * self.rng.uniform(0.8, 1.25), *STEP_RANGE))
            self.turn = float(np.clip(self.turn * self.rng.uniform(0.8, 1.25), *TURN_RANGE))
            guard = guard + 1 if len(self.poses) == before else 0
            if guard > 20:
                self.look_around()  # always adds frames
        return self.poses[:n]


def sample_walk_poses(level, n: int, rng: np.random.Generator | int | None = None) -> list[Pose]:
    """`n` consecutive poses of a walk through `level` that keeps revisiting places.

    The walk is continuous (no jumps), stays in free space (CollisionMap) at eye
    height, and mixes turning on the spot, out-and-back trips along shortest paths,
    loops through nearby free points that return to their start (and face the way
    they started, so the first view is seen again), wandering, and trips across the
    level to somewhere new.
    """
    from engine.world.collision import CollisionMap

    if n < 1:
        raise ValueError(f"need at least one pose, got n={n}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    cmap = CollisionMap(level)
    spawn = level.spawns[int(rng.integers(len(level.spawns)))]
    start = (float(spawn[0]), float(spawn[2]))
    if not cmap.is_free(*start):
        start = cmap.random_free_point(rng)
    walker = _Walker(level, cmap, rng, start, float(rng.uniform(-180.0, 180.0)))
    return walker.run(int(n))
