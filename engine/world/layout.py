"""Scene layout: what the level's geometry looks like from a pose, without any appearance.

For each pixel: metric depth along the view axis, the surface normal in the camera's frame,
a material class (floor, wall, ceiling, furniture, picture surface) and the surface's own
coordinates (its face's two world axes, in metres: where on the wall or floor the pixel lies,
the frame the renderer anchors its patterns to). Never a colour, a pattern, a light or a picture: those are the world model's to invent and its memory's to
keep. The layout is what keeps a generated walk a walk: rooms, walls and doorways where the
level has them, the same boxes the renderer, collision and minimap read.

It is a G-buffer pass of the level's boxes on its own headless GL context (moderngl on
EGL, as the renderer): a mesh that carries only positions, normals and classes, drawn by a
fragment shader that writes the normal and the class. It shares no state with the
ground-truth renderer, so a session given a layout source cannot reach a colour through it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.camera import MAX_SIDE, Intrinsics, Pose, view_matrix_gl
from engine.world.geometry import (
    CEILING,
    FACE_NORMALS,
    FLOOR,
    FURNITURE,
    LANDMARK,
    WALL,
    Box,
    face_corners,
)
from engine.world.levels import Level
from engine.world.renderer import pool_size

# Class indices of the layout's material map; NONE where nothing was drawn.
CLASSES = ("floor", "wall", "ceiling", "furniture", "picture")
FLOOR_C, WALL_C, CEILING_C, FURNITURE_C, PICTURE_C = range(len(CLASSES))
NONE = 255
CORRIDOR_BIT = 8
_MATERIAL_CLASS = {FLOOR: FLOOR_C, WALL: WALL_C, CEILING: CEILING_C, FURNITURE: FURNITURE_C, LANDMARK: FURNITURE_C}

NEAR, FAR = 0.05, 100.0
_POOL = 16          # framebuffers drawn before the first read-back, at most (fewer for large frames)

VERTEX = """
#version 330
uniform mat4 u_view;
uniform mat4 u_proj;
in vec3 in_pos;
in vec3 in_normal;
in float in_class;
in float in_room;
out vec3 v_normal;
out float v_depth;
out vec2 v_uv;
flat out float v_class;
flat out float v_room;
void main() {
    vec4 view = u_view * vec4(in_pos, 1.0);
    vec3 an = abs(in_normal);   // the face's world axes, as the renderer's _UV_AXES picks them
    v_uv = an.x > 0.5 ? in_pos.zy : (an.y > 0.5 ? in_pos.xz : in_pos.xy);
    v_depth = -view.z;
    v_normal = mat3(u_view) * in_normal;   // camera frame: x right, y up, z towards the viewer
    v_class = in_class;
    v_room = in_room;
    gl_Position = u_proj * view;
}
"""

FRAGMENT = """
#version 330
in vec3 v_normal;
in float v_depth;
in vec2 v_uv;
flat in float v_class;
flat in float v_room;
layout(location = 0) out vec4 f_gbuf;
layout(location = 1) out float f_depth;
layout(location = 2) out vec4 f_uv;
void main() {
    f_gbuf = vec4(normalize(v_normal) * 0.5 + 0.5, v_class / 255.0);   // classes are exact in 8 bits
    f_depth = v_depth;
    f_uv = vec4(v_uv, v_room, 0.0);
}
"""


@dataclass
class Layout:
    """The layout of a batch of views, (N, H, W) each; normals are unit vectors in the camera frame."""
    depth: np.ndarray      # float32 metres along the view axis (FAR where nothing is drawn)
    normal: np.ndarray     # float32 (N, H, W, 3)
    material: np.ndarray   # uint8 class index into CLASSES, NONE where nothing is drawn
    uv: np.ndarray | None = None   # float32 (N, H, W, 2) the surface's world-anchored coordinates (metres)
    corridor: np.ndarray | None = None   # bool (N, H, W): the surface belongs to a corridor, not a room
    room: np.ndarray | None = None       # int16 (N, H, W): the room whose surface it is, -1 (corridor, nothing)

    def __len__(self) -> int:
        return len(self.depth)

    def __getitem__(self, i) -> "Layout":
        pick = lambda a: None if a is None else a[i]  # noqa: E731
        return Layout(self.depth[i], self.normal[i], self.material[i], pick(self.uv), pick(self.corridor),
                      pick(self.room))


def face_class(box: Box, face: int) -> int:
    """The class a face of a box shows: a poster's picture face is a picture surface, its frame
    and every other box its material's class."""
    if box.material == LANDMARK and face == box.poster_face:
        return PICTURE_C
    return _MATERIAL_CLASS[box.material]


def build_layout_mesh(level: Level, t: float = 0.0) -> np.ndarray:
    """Triangle soup (V, 8) float32: position, normal, class, room index + 1 (0: a corridor's). No colours:
    which room a surface bounds is the level's structure, as its walls are."""
    rows = []
    for box in level.boxes_at(t):
        for face in range(6):
            tri = np.empty((6, 8), dtype=np.float32)
            tri[:, 0:3] = face_corners(box.lo, box.hi, face)[[0, 1, 2, 0, 2, 3]]
            tri[:, 3:6] = FACE_NORMALS[face]
            # Corridor surfaces are marked by CORRIDOR_BIT on the class: corridors share one fixed set
            # of patterns in every level, rooms draw theirs at random (engine/world/levels.py).
            tri[:, 6] = face_class(box, face) + (CORRIDOR_BIT if box.room < 0 else 0)
            tri[:, 7] = box.room + 1
            rows.append(tri)
    return np.concatenate(rows, axis=0)


class LayoutRenderer:
    """Layouts of a level for batches of poses at one resolution and field of view."""

    def __init__(self, level: Level, width: int = 128, height: int = 128, fov_deg: float = 70.0,
                 t: float = 0.0) -> None:
        import moderngl  # local: only GL users need it

        if not (8 <= width <= MAX_SIDE and 8 <= height <= MAX_SIDE):
            raise ValueError(f"layout resolution must be between 8x8 and {MAX_SIDE}x{MAX_SIDE}, got {width}x{height}")
        self.intrinsics = Intrinsics(int(width), int(height), float(fov_deg))
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as e:  # noqa: BLE001 - name the missing system packages
            raise RuntimeError("could not create a headless OpenGL (EGL) context for the scene layout; install "
                               "libegl1 libgl1 libegl-mesa0 libgl1-mesa-dri (see README): " + str(e)) from e
        self.prog = self.ctx.program(vertex_shader=VERTEX, fragment_shader=FRAGMENT)
        self._fbos = [self.ctx.framebuffer([self.ctx.renderbuffer((width, height), 4),
                                            self.ctx.renderbuffer((width, height), 1, dtype="f4"),
                                            self.ctx.renderbuffer((width, height), 4, dtype="f4")],
                                           self.ctx.depth_renderbuffer((width, height)))
                      for _ in range(pool_size(width, height, _POOL))]
        self.prog["u_proj"].write(self.intrinsics.projection_gl(NEAR, FAR).astype("f4").T.copy().tobytes())
        self.vao = self.vbo = None
        self.level: Level | None = None
        self.set_level(level, t)

    def set_level(self, level: Level, t: float = 0.0) -> None:
        mesh = build_layout_mesh(level, t)
        with self.ctx:
            if self.vbo is not None:
                self.vao.release()
                self.vbo.release()
            self.vbo = self.ctx.buffer(mesh.tobytes())
            self.vao = self.ctx.vertex_array(self.prog, [(self.vbo, "3f 3f 1f 1f", "in_pos", "in_normal", "in_class",
                                                               "in_room")])
        self.level = level

    def layout(self, poses: Sequence[Pose]) -> Layout:
        poses = list(poses)
        n, w, h = len(poses), self.intrinsics.width, self.intrinsics.height
        depth = np.empty((n, h, w), dtype=np.float32)
        normal = np.empty((n, h, w, 3), dtype=np.float32)
        material = np.empty((n, h, w), dtype=np.uint8)
        surf = np.zeros((n, h, w, 4), dtype=np.float32)   # uv, room + 1, unused
        with self.ctx:   # make this context current: the renderer's may be in this thread too
            self._draw_into(poses, depth, normal, material, surf)
        uv = np.ascontiguousarray(surf[..., :2])
        empty = material == NONE
        corridor = ~empty & (material >= CORRIDOR_BIT)
        material[corridor] -= CORRIDOR_BIT
        depth[empty | (depth <= 0.0)] = FAR
        normal[empty] = 0.0
        norm = np.linalg.norm(normal, axis=-1, keepdims=True)
        normal /= np.maximum(norm, 1e-6)   # 8-bit storage: renormalise
        uv[empty] = 0.0
        room = np.rint(surf[..., 2]).astype(np.int16) - 1
        room[empty] = -1
        return Layout(depth, normal, material, uv, corridor, room)

    def _draw_into(self, poses: list[Pose], depth: np.ndarray, normal: np.ndarray, material: np.ndarray,
                   surf: np.ndarray) -> None:
        import moderngl

        n, w, h = len(poses), self.intrinsics.width, self.intrinsics.height
        self.ctx.enable(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
        pool = len(self._fbos)
        for start in range(0, n, pool):
            chunk = poses[start:start + pool]
            for fbo, pose in zip(self._fbos, chunk):
                fbo.use()
                fbo.clear(0.5, 0.5, 0.5, 1.0, depth=1.0)   # alpha 1.0 reads as class 255: nothing drawn
                self.prog["u_view"].write(view_matrix_gl(pose).astype("f4").T.copy().tobytes())
                self.vao.render(moderngl.TRIANGLES)
            for k, fbo in enumerate(self._fbos[:len(chunk)]):
                g = np.frombuffer(fbo.read(components=4, alignment=1), dtype=np.uint8).reshape(h, w, 4)[::-1]
                d = np.frombuffer(fbo.read(components=1, attachment=1, dtype="f4", alignment=1),
                                  dtype=np.float32).reshape(h, w)[::-1]
                normal[start + k] = g[..., :3].astype(np.float32) * (2.0 / 255.0) - 1.0
                material[start + k] = g[..., 3]
                depth[start + k] = d
                surf[start + k] = np.frombuffer(fbo.read(components=4, attachment=2, dtype="f4", alignment=1),
                                                dtype=np.float32).reshape(h, w, 4)[::-1]

    def layout_one(self, pose: Pose) -> Layout:
        return self.layout([pose])[0]

    def close(self) -> None:
        self.ctx.release()
