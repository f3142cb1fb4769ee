"""Ground-truth renderer: exact RGB and metric depth for any pose, headless.

moderngl on an EGL context (Mesa's llvmpipe on a CPU machine, the NVIDIA driver
where there is one). A batch of poses is drawn into a pool of small framebuffers,
one per pose, all drawn before any is read: llvmpipe then rasterises them while
we queue the next, and each view is drawn at the same window origin, so a pose
renders to identical pixels wherever it sits in a batch (tiles of one large
framebuffer did not: window offsets changed the rounding at silhouettes).

This is the *world*: it makes training data, first observations and the
ground-truth pane. It never produces a frame that is shown as generated.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from engine.camera import MAX_SIDE, Intrinsics, Pose, view_matrix_gl
from engine.world import shaders
from engine.world.geometry import (
    CEILING,
    FACE_NORMALS,
    FLOOR,
    FURNITURE,
    LANDMARK,
    PAT_PLAIN,
    WALL,
    Box,
    face_corners,
)
from engine.world.levels import Level

FAR = 100.0
NEAR = 0.05
_POOL = 64  # framebuffers drawn before the first read-back (at most)
# GPU memory the framebuffer pool may take: 64 framebuffers of 128x128 need 12 MB, but 64 of
# 4096x4096 would need 13 GB, so large frames get fewer framebuffers (one at the largest size).
_POOL_BYTES = 256 << 20


def pool_size(width: int, height: int, most: int = _POOL) -> int:
    """Framebuffers for a resolution: as many as fit _POOL_BYTES (colour, linear depth, depth
    buffer: 12 bytes a pixel, the renderer's and the scene layout's alike), from 1 to `most`."""
    return max(1, min(most, _POOL_BYTES // (12 * width * height)))

# The two in-plane axes (u, v) per face, as indices into xyz, for world-anchored texture coordinates.
_UV_AXES = [(2, 1), (2, 1), (0, 2), (0, 2), (0, 1), (0, 1)]
_FLOATS_PER_VERTEX = 24


def _poster_uv(quad: np.ndarray, face: int) -> np.ndarray:
    """uv in [0, 1]: u to the viewer's right, v up, for a picture on a vertical face."""
    n = FACE_NORMALS[face].astype(np.float64)
    right = np.cross(-n, np.array([0.0, 1.0, 0.0]))
    ru, rv = quad @ right, quad[:, 1]
    return np.stack([(ru - ru.min()) / max(np.ptp(ru), 1e-9), (rv - rv.min()) / max(np.ptp(rv), 1e-9)], axis=1)


def _box_rows(box: Box, light, lpos) -> list[np.ndarray]:
    lo, hi = np.asarray(box.lo, dtype=np.float64), np.asarray(box.hi, dtype=np.float64)
    out = []
    for face in range(6):
        quad = face_corners(lo, hi, face)
        col1, col2, pat = box.color1, box.color2, box.pattern
        if box.material == LANDMARK:
            if face == box.poster_face:
                uv = _poster_uv(quad, face)
            else:  # edges of a poster: plain frame
                uv = quad[:, list(_UV_AXES[face])]
                col1, pat = (0.1, 0.1, 0.1), (float(PAT_PLAIN), 1.0, 0.0, 0.0)
        else:
            uv = quad[:, list(_UV_AXES[face])]
        rows = np.empty((4, _FLOATS_PER_VERTEX), dtype=np.float32)
        rows[:, 0:3] = quad
        rows[:, 3:6] = FACE_NORMALS[face]
        rows[:, 6:8] = uv
        rows[:, 8:11] = col1
        rows[:, 11:14] = col2
        rows[:, 14:18] = pat
        rows[:, 18:21] = light
        rows[:, 21:24] = lpos
        out.append(rows[[0, 1, 2, 0, 2, 3]])
    return out


# Within a zone, items usually in front are drawn first so the depth test rejects the
# fragments they hide before they are shaded (the fragment shader is the cost on llvmpipe).
_DRAW_RANK = {LANDMARK: 0, FURNITURE: 1, WALL: 2, FLOOR: 3, CEILING: 3}


def build_zoned_mesh(level: Level, t: float = 0.0) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray]]]:
    """Triangle soup (V, 24) float32 grouped by zone (a room or a corridor), and per zone
    (first vertex, vertex count, xz bounding rectangle (4,)) so views can draw near zones first."""
    lights = {r.index: (r.light, (r.center[0], r.height - 0.4, r.center[1])) for r in level.rooms}
    door_lights = [((0.95, 0.93, 0.88), (0.5 * (d.lo[0] + d.hi[0]), 2.1, 0.5 * (d.lo[1] + d.hi[1]))) for d in level.doors]
    door_lights = door_lights or list(lights.values())  # a level without corridors lights stray boxes by its rooms
    zones: dict[tuple, list[Box]] = {}
    zone_light = {}
    for box in level.boxes_at(t):
        if box.room >= 0:
            key, (light, lpos) = ("room", box.room), lights[box.room]
        else:
            c = 0.5 * (np.asarray(box.lo) + np.asarray(box.hi))
            k = min(range(len(door_lights)), key=lambda i: (door_lights[i][1][0] - c[0]) ** 2 + (door_lights[i][1][2] - c[2]) ** 2)
            key, (light, lpos) = ("door", k), door_lights[k]
        zones.setdefault(key, []).append(box)
        zone_light[key] = (light, lpos)
    out, ranges, first = [], [], 0
    for key, boxes in zones.items():
        boxes = sorted(boxes, key=lambda b: _DRAW_RANK.get(b.material, 2))
        rows = [r for b in boxes for r in _box_rows(b, *zone_light[key])]
        count = 6 * len(rows)
        lo = np.min([b.lo for b in boxes], axis=0)
        hi = np.max([b.hi for b in boxes], axis=0)
        ranges.append((first, count, np.array([lo[0], lo[2], hi[0], hi[2]])))
        out += rows
        first += count
    return np.concatenate(out, axis=0), ranges


def build_mesh(level: Level, t: float = 0.0) -> np.ndarray:
    """Triangle soup (V, 24) float32 for the level's boxes at time t."""
    return build_zoned_mesh(level, t)[0]


def _zone_order(ranges: list[tuple[int, int, np.ndarray]], x: float, z: float) -> list[int]:
    """Zones sorted by distance from the camera to their rectangle (0 inside it)."""
    d = []
    for i, (_, _, r) in enumerate(ranges):
        dx = max(r[0] - x, 0.0, x - r[2])
        dz = max(r[1] - z, 0.0, z - r[3])
        d.append((dx * dx + dz * dz, i))
    return [i for _, i in sorted(d)]


class Renderer:
    """Renders RGB (uint8) and depth (float32 metres along the view axis) for batches of poses."""

    def __init__(self, level: Level, width: int = 128, height: int = 128, fov_deg: float = 70.0,
                 t: float = 0.0) -> None:
        import moderngl  # local: only the renderer needs a GL context

        if not (8 <= width <= MAX_SIDE and 8 <= height <= MAX_SIDE):
            raise ValueError(f"render resolution must be between 8x8 and {MAX_SIDE}x{MAX_SIDE}, got {width}x{height}")
        self.intrinsics = Intrinsics(int(width), int(height), float(fov_deg))
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as e:  # noqa: BLE001 - name the missing system packages
            raise RuntimeError(
                "could not create a headless OpenGL (EGL) context; install the Debian packages "
                "libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri (see README): " + str(e)) from e
        self.prog = self.ctx.program(vertex_shader=shaders.VERTEX, fragment_shader=shaders.FRAGMENT)
        self.max_batch = pool_size(width, height)
        self._fbos = []
        for _ in range(self.max_batch):
            color = self.ctx.renderbuffer((width, height), 4)
            lin = self.ctx.renderbuffer((width, height), 1, dtype="f4")
            self._fbos.append(self.ctx.framebuffer([color, lin], self.ctx.depth_renderbuffer((width, height))))
        self._proj = self.intrinsics.projection_gl(NEAR, FAR).astype("f4")
        self.vao = None
        self.vbo = None
        self.level = None
        self.set_level(level, t)

    @property
    def width(self) -> int:
        return self.intrinsics.width

    @property
    def height(self) -> int:
        return self.intrinsics.height

    def set_level(self, level: Level, t: float = 0.0) -> None:
        """Switch to another level (or another time of the same one)."""
        mesh, self._zones = build_zoned_mesh(level, t)
        with self.ctx:
            self._upload(mesh)
        self.level = level

    def _upload(self, mesh: np.ndarray) -> None:
        if self.vbo is not None:
            self.vao.release()
            self.vbo.release()
        self.vbo = self.ctx.buffer(mesh.tobytes())
        self.vao = self.ctx.vertex_array(self.prog, [(
            self.vbo, "3f 3f 2f 3f 3f 4f 3f 3f",
            "in_pos", "in_normal", "in_uv", "in_col1", "in_col2", "in_pat", "in_light", "in_lpos")])

    def render(self, poses: Sequence[Pose], t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """RGB (N, H, W, 3) uint8 and depth (N, H, W) float32 for each pose."""
        poses = list(poses)
        n, w, h = len(poses), self.width, self.height
        rgb = np.empty((n, h, w, 3), dtype=np.uint8)
        depth = np.empty((n, h, w), dtype=np.float32)
        with self.ctx:   # make this context current: another one (the scene layout's) may be in this thread
            self._render_into(poses, rgb, depth)
        # Nothing drawn (never inside a closed level) reads as "far", not as zero distance.
        depth[depth <= 0.0] = FAR
        return rgb, depth

    def _render_into(self, poses: list[Pose], rgb: np.ndarray, depth: np.ndarray) -> None:
        import moderngl

        w, h = self.width, self.height
        self.ctx.enable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        self.prog["u_proj"].write(self._proj.T.copy().tobytes())
        for start in range(0, len(poses), self.max_batch):
            chunk = poses[start:start + self.max_batch]
            for fbo, pose in zip(self._fbos, chunk):
                fbo.use()
                fbo.clear(0.0, 0.0, 0.0, 1.0, depth=1.0)
                self.prog["u_view"].write(view_matrix_gl(pose).astype("f4").T.copy().tobytes())
                for zi in _zone_order(self._zones, pose.position[0], pose.position[2]):
                    first, count, _ = self._zones[zi]
                    self.vao.render(moderngl.TRIANGLES, vertices=count, first=first)
            for k, fbo in enumerate(self._fbos[:len(chunk)]):
                # GL rows run bottom-up: flip to top-first.
                # RGBA is the framebuffer's own format: reading 3 components makes Mesa convert (~0.4 ms).
                col = np.frombuffer(fbo.read(components=4, alignment=1), dtype=np.uint8).reshape(h, w, 4)
                dep = np.frombuffer(fbo.read(components=1, attachment=1, dtype="f4", alignment=1),
                                    dtype=np.float32).reshape(h, w)
                rgb[start + k] = col[::-1, :, :3]
                depth[start + k] = dep[::-1]

    def render_one(self, pose: Pose, t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        rgb, depth = self.render([pose], t)
        return rgb[0], depth[0]

    def close(self) -> None:
        self.ctx.release()


def egl_available() -> bool:
    """True when a headless GL context can be made (used to give a clear error early)."""
    try:
        import moderngl

        moderngl.create_standalone_context(backend="egl").release()
        return True
    except Exception:  # noqa: BLE001
        return False


os.environ.setdefault("LP_NUM_THREADS", str(os.cpu_count() or 2))
