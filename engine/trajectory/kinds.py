"""Builders of the four trajectory kinds, so that what the generated part looks at is known.

Motion is a person's: walking at 1.4 m/s and turning at up to 90 deg/s, sampled at the
file's fps, always with the body radius clear of walls and furniture (paths come from
CollisionMap.shortest_path with a small extra margin). Revisit pairs reuse the very same
Pose objects, so their poses are bitwise equal. Everything is deterministic in
(scene seed, kind, rng_seed).

- turnaround: one observed frame, then two full turns in place.
- retrace: A -> B (>= 6 m, different rooms) observed, the same poses back to A generated.
- out-and-back: A -> B and a look-around at B observed; the walk back facing ahead, and a
  turn to the first view, generated.
- explore: a long walk through random waypoints from one observed frame that every
  150-250 frames goes back to an earlier waypoint and looks the way it looked then.
"""
from __future__ import annotations

import math

import numpy as np

from engine.camera import Pose, angle_diff, wrap_degrees
from engine.trajectory.format import KINDS, Trajectory
from engine.world.collision import CollisionMap, collision_map_for_seed
from engine.world.levels import Level, generate_level

WALK_SPEED = 1.4        # m/s
TURN_RATE = 90.0        # deg/s
PLAN_MARGIN = 0.02      # m beyond the body radius: paths keep off the walls, poses keep a margin
LOOKAHEAD = 0.7         # m along the path a walker looks towards, so corners are anticipated
MIN_OUTBOUND = 6.0      # m of the A -> B walk of retrace and out-and-back
RETURN_EVERY = (150, 251)  # explore: frames between returns to an earlier waypoint


class _Mouse:
    """Explore's look offsets: now and then a new glance direction and a slight pitch."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.offset, self.pitch = rng, 0.0, 0.0

    def aim(self) -> tuple[float, float]:
        if self.rng.random() < 0.04:
            self.offset = 0.0 if self.rng.random() < 0.4 else float(self.rng.uniform(-60.0, 60.0))
        if self.rng.random() < 0.04:
            self.pitch = float(self.rng.uniform(-8.0, 8.0))
        return self.offset, self.pitch


class _Polyline:
    """A path as a function of distance walked along it."""

    def __init__(self, path: list[tuple[float, float]]) -> None:
        pts = [path[0]] + [p for p, q in zip(path[1:], path[:-1]) if p != q]
        self.end = pts[-1]
        self.xs, self.zs = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        self.cum = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(self.xs), np.diff(self.zs)))])
        self.total = float(self.cum[-1])

    def at(self, s: float) -> tuple[float, float]:
        return float(np.interp(s, self.cum, self.xs)), float(np.interp(s, self.cum, self.zs))

    def heading(self, s: float, fallback: float) -> float:
        """Yaw looking from the point at s towards the point LOOKAHEAD further on."""
        (x0, z0), (x1, z1) = self.at(s), self.at(min(s + LOOKAHEAD, self.total))
        if math.hypot(x1 - x0, z1 - z0) < 1e-3:
            return fallback
        return wrap_degrees(math.degrees(math.atan2(-(x1 - x0), -(z1 - z0))))  # yaw 0 looks along -z


def _end_on(poses: list[Pose], turn: list[Pose], target: Pose) -> None:
    """Finish a return on `target` itself, so the revisit pair is bitwise equal."""
    if turn:
        poses += turn
    else:  # already looking that way: the arrival frame becomes the very same pose
        poses[-1] = target


class _Walker:
    def __init__(self, level: Level, cmap: CollisionMap, rng: np.random.Generator, fps: float) -> None:
        self.level, self.cmap, self.rng = level, cmap, rng
        self.step, self.max_turn = WALK_SPEED / fps, TURN_RATE / fps
        self.radius = cmap.radius + PLAN_MARGIN
        self.y = float(level.eye_height)
        self.neighbours: dict[int, list[int]] = {r.index: [] for r in level.rooms}
        for d in level.doors:
            self.neighbours[d.rooms[0]].append(d.rooms[1])
            self.neighbours[d.rooms[1]].append(d.rooms[0])

    def pose(self, xz: tuple[float, float], yaw: float, pitch: float = 0.0) -> Pose:
        return Pose((xz[0], self.y, xz[1]), yaw, pitch)

    def point(self, room: int | None = None, spawn: bool = False) -> tuple[float, float]:
        """A free spot: the room's spawn when asked for and free, else a random one."""
        if spawn and room is not None:
            x, _, z = self.level.spawns[room]
            if self.cmap.is_free(x, z, self.radius):
                return (float(x), float(z))
        return self.cmap.random_free_point(self.rng, room, radius=self.radius)

    def path(self, a: tuple[float, float], b: tuple[float, float]) -> list[tuple[float, float]]:
        return self.cmap.shortest_path(a, b, radius=self.radius)

    def turn_to(self, pose: Pose, yaw: float, pitch: float, end: Pose | None = None) -> list[Pose]:
        """Turn in place at the full rate; the last pose is `end` (or yaw/pitch exactly)."""
        dyaw, dpitch = wrap_degrees(yaw - pose.yaw), pitch - pose.pitch
        n = math.ceil(max(abs(dyaw), abs(dpitch)) / self.max_turn - 1e-9)
        if n <= 0:
            return []
        out = [Pose(pose.position, wrap_degrees(pose.yaw + dyaw * k / n), pose.pitch + dpitch * k / n)
               for k in range(1, n)]
        return out + [end if end is not None else Pose(pose.position, wrap_degrees(yaw), pitch)]

    def walk(self, path: list[tuple[float, float]], pose: Pose, mouse: _Mouse | None = None) -> list[Pose]:
        """Poses after `pose` walking `path` looking ahead (turning first if it starts behind).

        Steps are equal and at most one frame's walk; the last pose stands exactly on path[-1].
        """
        line = _Polyline(path)
        if line.total == 0.0:
            return []
        out: list[Pose] = []
        h = line.heading(0.0, pose.yaw)
        if angle_diff(h, pose.yaw) > 45.0:  # a person turns round before setting off
            out += self.turn_to(pose, h, pose.pitch)
            pose = out[-1]
        yaw, pitch = pose.yaw, pose.pitch
        n = math.ceil(line.total / self.step - 1e-9)
        for k in range(1, n + 1):
            s = line.total * k / n
            h = line.heading(s, h)
            off, aim_pitch = mouse.aim() if mouse is not None else (0.0, 0.0)
            yaw = wrap_degrees(yaw + float(np.clip(wrap_degrees(h + off - yaw), -self.max_turn, self.max_turn)))
            pitch = pitch + float(np.clip(aim_pitch - pitch, -self.max_turn, self.max_turn))
            out.append(self.pose(line.end if k == n else line.at(s), yaw, pitch))
        return out

    def outbound(self, min_length: float) -> tuple[list[Pose], tuple[float, float]]:
        """An A -> B walk of at least `min_length` metres between two different rooms."""
        rooms = len(self.level.rooms)
        for attempt in range(60):
            ra = int(self.rng.integers(rooms))
            if attempt < 30 and self.neighbours[ra]:  # through one door first; farther when too short
                rb = self.neighbours[ra][int(self.rng.integers(len(self.neighbours[ra])))]
            else:
                rb = int((ra + self.rng.integers(1, rooms)) % rooms)
            a, b = self.point(ra), self.point(rb)
            path = self.path(a, b)
            line = _Polyline(path)
            if line.total >= min_length:
                start = self.pose(a, line.heading(0.0, 0.0))  # set off already facing the way
                return [start] + self.walk(path, start), b
        raise ValueError(f"scene {self.level.seed}: found no walk of {min_length:.1f} m between two rooms")


def _turnaround(w: _Walker, frames: int | None) -> tuple[list[Pose], int, list[tuple[int, int]]]:
    need = math.ceil(360.0 / w.max_turn - 1e-9)
    if frames is None:
        frames = 1 + 2 * need
    n = (frames - 1) // 2
    if frames % 2 == 0 or n < need:
        raise ValueError(f"turnaround needs an odd frame count of at least {1 + 2 * need} at this fps, got {frames}")
    room = int(w.rng.integers(len(w.level.rooms)))
    start = w.pose(w.point(room, spawn=True), float(w.rng.uniform(-180.0, 180.0)))
    sign = 1.0 if w.rng.random() < 0.5 else -1.0
    turn = [Pose(start.position, wrap_degrees(start.yaw + sign * 360.0 * k / n)) for k in range(1, n)] + [start]
    poses = [start] + turn + turn
    revisits = [(0, n), (0, 2 * n)] + [(k, n + k) for k in range(1, n + 1)]
    return poses, 1, revisits


def _retrace(w: _Walker, frames: int | None) -> tuple[list[Pose], int, list[tuple[int, int]]]:
    # 2n - 1 frames for n outbound ones, whose n - 1 steps are each at most one frame's walk
    length = max(MIN_OUTBOUND, w.step * ((frames or 0) + 1) / 2)
    out, _ = w.outbound(length)
    n = len(out)
    back = out[-2::-1]
    return out + back, n, [(n - 2 - m, n + m) for m in range(n - 1)]


def _out_and_back(w: _Walker, frames: int | None) -> tuple[list[Pose], int, list[tuple[int, int]]]:
    length = MIN_OUTBOUND
    for _ in range(4):
        out, b = w.outbound(length)
        arrive = out[-1]
        n_look = math.ceil(360.0 / w.max_turn - 1e-9)
        sign = 1.0 if w.rng.random() < 0.5 else -1.0
        look = [Pose(arrive.position, wrap_degrees(arrive.yaw + sign * 360.0 * k / n_look)) for k in range(1, n_look)]
        look.append(arrive)
        observed = out + look
        first = len(out)  # index of look[0]
        # Turn towards the way back through the look-around's own poses: each is a revisit.
        a = (out[0].position[0], out[0].position[2])
        path = w.path(b, a)
        home = _Polyline(path).heading(0.0, arrive.yaw)
        steps = round((wrap_degrees(home - arrive.yaw) * sign) % 360.0 / (360.0 / n_look))
        order = list(range(steps)) if steps <= n_look // 2 else list(range(n_look - 2, steps - 2, -1))
        gen = [look[k] for k in order]
        revisits = [(first + k, len(observed) + m) for m, k in enumerate(order)]
        gen += w.walk(path, gen[-1] if gen else arrive)
        poses = observed + gen
        _end_on(poses, w.turn_to(poses[-1], out[0].yaw, out[0].pitch, end=out[0]), out[0])
        revisits.append((0, len(poses) - 1))
        if frames is None or len(poses) >= frames:
            return poses, len(observed), revisits
        length += w.step * (frames - len(poses)) / 2
    raise ValueError(f"scene {w.level.seed}: found no out-and-back walk of {frames} frames")


def _explore(w: _Walker, frames: int | None) -> tuple[list[Pose], int, list[tuple[int, int]]]:
    frames = 1200 if frames is None else frames
    mouse = _Mouse(w.rng)
    room = int(w.rng.integers(len(w.level.rooms)))
    poses = [w.pose(w.point(room, spawn=True), float(w.rng.uniform(-180.0, 180.0)))]
    anchors, revisits = [0], []
    next_return = int(w.rng.integers(*RETURN_EVERY))  # counted between the starts of returns
    while len(poses) < frames:
        here = poses[-1]
        xz = (here.position[0], here.position[2])
        # far enough back to test memory, and somewhere else than here
        old = [k for k in anchors if len(poses) - k >= 100 and poses[k].position != here.position]
        if len(poses) >= next_return and old:
            next_return = len(poses) + int(w.rng.integers(*RETURN_EVERY))
            k = old[-1 - int(w.rng.integers(min(len(old), 4)))]  # a recent one: the walk back stays short
            target = poses[k]
            poses += w.walk(w.path(xz, (target.position[0], target.position[2])), here, mouse)
            _end_on(poses, w.turn_to(poses[-1], target.yaw, target.pitch, end=target), target)
            revisits.append((k, len(poses) - 1))
            next_return = max(next_return, len(poses) + 60)  # some walking between two returns
            continue
        leg = w.walk(w.path(xz, w.point(_next_room(w, w.level.room_at(*xz)))), here, mouse)
        if 0 < next_return - len(poses) < len(leg):  # time to go back: break off this walk
            poses += leg[:next_return - len(poses)]
            continue
        poses += leg
        glance = wrap_degrees(poses[-1].yaw + float(w.rng.uniform(-120.0, 120.0)))
        poses += w.turn_to(poses[-1], glance, float(w.rng.uniform(-10.0, 10.0)))
        anchors.append(len(poses) - 1)
    return poses[:frames], 1, [(i, j) for i, j in revisits if j < frames]


def _next_room(w: _Walker, here: int) -> int:
    """This room or one through a door: short walks leave time for many returns."""
    if here < 0:
        return int(w.rng.integers(len(w.level.rooms)))
    if w.rng.random() < 0.25 or not w.neighbours[here]:
        return here
    return w.neighbours[here][int(w.rng.integers(len(w.neighbours[here])))]


_BUILDERS = {"turnaround": _turnaround, "retrace": _retrace, "out-and-back": _out_and_back, "explore": _explore}


def make_trajectory(seed_or_level: int | Level, kind: str, frames: int | None = None, fps: float = 15,
                    fov_deg: float = 70, resolution: tuple[int, int] = (128, 128), rng_seed: int = 0) -> Trajectory:
    """Build a trajectory of `kind` (one of KINDS) in a scene.

    `frames`: the exact count for explore (default 1200) and turnaround (odd, at least
    1 + 2 * ceil(360 / (90 / fps)), the default); for retrace and out-and-back a minimum
    that lengthens the walk (default: whatever a walk of at least 6 m needs).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown trajectory kind {kind!r}; choose one of {', '.join(KINDS)}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if isinstance(seed_or_level, Level):
        level, cmap = seed_or_level, CollisionMap(seed_or_level)
    else:
        level, cmap = generate_level(int(seed_or_level)), collision_map_for_seed(int(seed_or_level))
    rng = np.random.default_rng([level.seed, int(rng_seed), KINDS.index(kind)])
    poses, observe, revisits = _BUILDERS[kind](_Walker(level, cmap, rng, float(fps)), frames)
    xyz = np.array([p.position for p in poses])
    worst = float(np.min(cmap.clearance(xyz[:, 0], xyz[:, 2])))
    if worst < cmap.radius:  # the builders' own promise; a failure here is a bug, not bad input
        raise RuntimeError(f"{kind} in scene {level.seed}: a pose is only {worst:.3f} m from an obstacle")
    return Trajectory(level.seed, poses, float(fps), float(fov_deg), (int(resolution[0]), int(resolution[1])),
                      observe, revisits, kind)
