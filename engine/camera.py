"""Camera convention shared by every part of Mirage Explorer.

World: right-handed, y up, metres. The camera looks along -z (OpenGL). Yaw in
degrees about +y (0 looks along -z, positive turns left); pitch in degrees,
positive looks up, clamped to +-85. Intrinsics come from the vertical FOV with
square pixels and the principal point at the image centre (pixel i covers
[i, i+1), so its centre is i + 0.5).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PITCH_LIMIT_DEG = 85.0

# OpenGL camera axes (x right, y up, z back) to OpenCV axes (x right, y down, z forward).
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Pose:
    """A camera pose: eye position in metres, yaw and pitch in degrees (no roll)."""

    position: tuple[float, float, float]
    yaw: float = 0.0
    pitch: float = 0.0

    def __post_init__(self) -> None:
        pos = tuple(float(v) for v in self.position)
        if len(pos) != 3:
            raise ValueError(f"Pose.position needs 3 numbers, got {self.position!r}")
        object.__setattr__(self, "position", pos)
        object.__setattr__(self, "yaw", float(self.yaw))
        object.__setattr__(self, "pitch", float(np.clip(self.pitch, -PITCH_LIMIT_DEG, PITCH_LIMIT_DEG)))

    @property
    def xyz(self) -> np.ndarray:
        return np.asarray(self.position, dtype=np.float64)

    def rotation(self) -> np.ndarray:
        """3x3 camera-to-world rotation (OpenGL axes)."""
        return rotation_from_yaw_pitch(self.yaw, self.pitch)

    def c2w(self) -> np.ndarray:
        """4x4 camera-to-world matrix in the OpenGL convention (nerfstudio's too)."""
        m = np.eye(4)
        m[:3, :3] = self.rotation()
        m[:3, 3] = self.xyz
        return m

    def w2c_opencv(self) -> np.ndarray:
        """4x4 world-to-camera matrix in the OpenCV convention (x right, y down, z forward)."""
        c2w_cv = self.c2w()
        c2w_cv[:3, :3] = c2w_cv[:3, :3] @ _GL_TO_CV
        return np.linalg.inv(c2w_cv)

    def forward(self) -> np.ndarray:
        return -self.rotation()[:, 2]

    def as_dict(self) -> dict:
        return {"position": list(self.position), "yaw": self.yaw, "pitch": self.pitch}

    @staticmethod
    def from_c2w(m: np.ndarray, atol: float = 1e-4) -> "Pose":
        """Inverse of c2w(); refuses matrices with roll or that are not rotations."""
        m = np.asarray(m, dtype=np.float64)
        if m.shape not in ((4, 4), (3, 4)):
            raise ValueError(f"camera-to-world matrix must be 4x4 or 3x4, got shape {m.shape}")
        r = m[:3, :3]
        if not np.allclose(r @ r.T, np.eye(3), atol=atol) or np.linalg.det(r) < 0:
            raise ValueError("camera-to-world matrix: the 3x3 block is not a rotation")
        if abs(r[1, 0]) > atol:  # the camera's x axis must stay horizontal: no roll
            raise ValueError(f"camera-to-world matrix has roll (x axis y-component {r[1, 0]:.4g})")
        # A horizontal x axis also holds for a camera rolled by 180 degrees, or one in OpenCV's
        # convention (y down, z forward: the usual NeRF mix-up); both have their up axis pointing down.
        if r[1, 1] <= 0.0:
            raise ValueError(f"camera-to-world matrix is upside down (its up axis has y-component {r[1, 1]:.4g}): "
                             f"rolled by 180 degrees, or in OpenCV's convention (y down, z forward) rather "
                             f"than OpenGL's (y up, looking along -z)")
        fwd = -r[:, 2]
        pitch = math.degrees(math.asin(float(np.clip(fwd[1], -1.0, 1.0))))
        if abs(pitch) > PITCH_LIMIT_DEG + 1e-3:
            raise ValueError(f"camera-to-world matrix looks {abs(pitch):.1f} degrees {'up' if pitch > 0 else 'down'}; "
                             f"walks look at most {PITCH_LIMIT_DEG:g} degrees up or down")
        yaw = math.degrees(math.atan2(-fwd[0], -fwd[2]))
        return Pose(tuple(m[:3, 3]), yaw, pitch)

    @staticmethod
    def from_w2c_opencv(m: np.ndarray) -> "Pose":
        c2w = np.linalg.inv(np.asarray(m, dtype=np.float64))
        c2w[:3, :3] = c2w[:3, :3] @ _GL_TO_CV
        return Pose.from_c2w(c2w)


def rotation_from_yaw_pitch(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    cy, sy, cp, sp = math.cos(y), math.sin(y), math.cos(p), math.sin(p)
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return ry @ rx


def wrap_degrees(a: float) -> float:
    """Map an angle to [-180, 180)."""
    return (a + 180.0) % 360.0 - 180.0


def angle_diff(a: float, b: float) -> float:
    """Smallest absolute difference between two angles in degrees."""
    return abs(wrap_degrees(a - b))


# The largest frame side the renderer, the trajectory reader and the CLI accept (the renderer's
# framebuffers and read-back arrays for one 4096x4096 frame take about 300 MB).
MAX_SIDE = 4096


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics from a vertical field of view; square pixels, centred principal point."""

    width: int
    height: int
    fov_deg: float = 70.0

    @property
    def fy(self) -> float:
        return 0.5 * self.height / math.tan(math.radians(self.fov_deg) / 2.0)

    @property
    def fx(self) -> float:
        return self.fy

    @property
    def cx(self) -> float:
        return 0.5 * self.width

    @property
    def cy(self) -> float:
        return 0.5 * self.height

    def matrix(self) -> np.ndarray:
        """3x3 OpenCV K (pixel centres at i + 0.5)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """Same field of view at another resolution (e.g. the latent grid)."""
        return Intrinsics(width, height, self.fov_deg)

    def projection_gl(self, near: float = 0.05, far: float = 100.0) -> np.ndarray:
        """OpenGL clip-space projection matching these intrinsics."""
        f = 1.0 / math.tan(math.radians(self.fov_deg) / 2.0)
        aspect = self.width / self.height
        return np.array(
            [
                [f / aspect, 0.0, 0.0, 0.0],
                [0.0, f, 0.0, 0.0],
                [0.0, 0.0, (far + near) / (near - far), 2.0 * far * near / (near - far)],
                [0.0, 0.0, -1.0, 0.0],
            ]
        )


def view_matrix_gl(pose: Pose) -> np.ndarray:
    """4x4 world-to-camera matrix in OpenGL axes."""
    return np.linalg.inv(pose.c2w())


def relative_pose(src: Pose, dst: Pose) -> np.ndarray:
    """4x4 transform taking points in src's camera frame to dst's camera frame (OpenGL axes)."""
    return np.linalg.inv(dst.c2w()) @ src.c2w()


def to_nerfstudio(poses: list[Pose], intr: Intrinsics, file_paths: list[str],
                  depth_paths: list[str] | None = None) -> dict:
    """A nerfstudio-style transforms.json dict (OpenGL camera-to-world per frame)."""
    frames = []
    for i, (pose, fp) in enumerate(zip(poses, file_paths, strict=True)):
        fr = {"file_path": fp, "transform_matrix": pose.c2w().tolist()}
        if depth_paths is not None:
            fr["depth_file_path"] = depth_paths[i]
        frames.append(fr)
    return {
        "camera_model": "OPENCV",
        "fl_x": intr.fx, "fl_y": intr.fy, "cx": intr.cx, "cy": intr.cy,
        "w": intr.width, "h": intr.height,
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "frames": frames,
    }


def from_nerfstudio(data: dict) -> tuple[list[Pose], Intrinsics]:
    """Poses and intrinsics back from a transforms.json dict."""
    for key in ("w", "h", "fl_y", "frames"):
        if key not in data:
            raise ValueError(f"transforms.json: missing key {key!r}")
    for key in ("w", "h"):
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 8 <= v <= MAX_SIDE:
            raise ValueError(f"transforms.json: {key} must be a whole number of pixels from 8 to {MAX_SIDE}, got {v!r}")
    w, h, fl_y, frames = data["w"], data["h"], data["fl_y"], data["frames"]
    if isinstance(fl_y, bool) or not isinstance(fl_y, (int, float)) or not (math.isfinite(fl_y) and fl_y > 0):
        raise ValueError(f"transforms.json: fl_y must be a positive focal length in pixels, got {fl_y!r}")
    if not isinstance(frames, list):
        raise ValueError(f"transforms.json: frames must be a list of frames, got {type(frames).__name__}")
    fov = math.degrees(2.0 * math.atan(0.5 * h / fl_y))
    poses = []
    for i, fr in enumerate(frames):
        try:
            if not isinstance(fr, dict) or "transform_matrix" not in fr:
                raise ValueError("each frame must be an object with a transform_matrix")
            m = np.asarray(fr["transform_matrix"], dtype=np.float64)
            if not np.isfinite(m).all():
                raise ValueError("holds NaN or infinite values")
            poses.append(Pose.from_c2w(m))
        except (TypeError, ValueError) as e:   # TypeError: nulls or strings inside the matrix
            raise ValueError(f"transforms.json: frames[{i}].transform_matrix: {e}") from None
    return poses, Intrinsics(w, h, round(fov, 6))
