"""Top-down minimap: walls, the path walked, the camera's frustum, and what memory holds.

Memory points are coloured by age (bright = just written, dark = old), so a person can
see which parts of the world the model still remembers and which it has forgotten or
never stored. Map axes: x to the right, -z up, so a camera at yaw 0 (looking along -z)
points up the map.

Like the plots, every graphics item is created once and updated in place, on the
minimap's own timer: the window only hands over the latest state.
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget

from engine.camera import Pose

FRUSTUM_M = 1.6          # length of the drawn view cone
AGE_HORIZON = 300.0      # frames; older points all get the darkest colour
_LUT_SIZE = 32


def _age_brushes() -> np.ndarray:
    cmap = pg.colormap.get("viridis")
    colors = cmap.getLookupTable(0.0, 1.0, _LUT_SIZE, alpha=False)[::-1]   # young = bright yellow
    return np.array([pg.mkBrush(QColor(int(r), int(g), int(b), 200)) for r, g, b in colors], dtype=object)


class Minimap(pg.PlotWidget):
    def __init__(self, parent: QWidget | None = None, interval_ms: int = 100) -> None:
        super().__init__(parent)
        self.setBackground((20, 20, 24))
        self.setAspectLocked(True)
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.setMenuEnabled(False)
        self._brushes = _age_brushes()
        self.walls = self.plot([], [], pen=pg.mkPen((200, 200, 205), width=2), connect="pairs")
        self.furniture = self.plot([], [], pen=pg.mkPen((110, 110, 120), width=1), connect="pairs")
        self.memory = pg.ScatterPlotItem(size=3, pen=None, pxMode=True)
        self.addItem(self.memory)
        self.path = self.plot([], [], pen=pg.mkPen((255, 255, 255, 140), width=1))
        self.frustum = self.plot([], [], pen=pg.mkPen((255, 90, 90), width=2))
        self.eye = pg.ScatterPlotItem(size=7, brush=pg.mkBrush(255, 90, 90), pen=None)
        self.addItem(self.eye)
        self._pose: Pose | None = None
        self._path: list[tuple[float, float]] = []
        self._points: np.ndarray | None = None
        self._fov = 70.0
        self._dirty_pose = self._dirty_points = False
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(interval_ms)

    # ---- state from the window (cheap: stores references, draws on the timer) ---------
    def set_world(self, collision, fov_deg: float) -> None:
        """Walls from the collision map's boundary segments, furniture from its solid footprints."""
        self._fov = float(fov_deg)
        e = np.asarray(collision.edges, dtype=np.float64).reshape(-1, 4)      # x0, z0, x1, z1
        self.walls.setData(e[:, [0, 2]].ravel(), -e[:, [1, 3]].ravel())
        s = np.asarray(collision.solids, dtype=np.float64).reshape(-1, 4)     # lo_x, lo_z, hi_x, hi_z
        corners_x = s[:, [0, 2, 2, 2, 2, 0, 0, 0]].ravel()                   # four sides as pairs
        corners_z = s[:, [1, 1, 1, 3, 3, 3, 3, 1]].ravel()
        self.furniture.setData(corners_x, -corners_z)
        self._points, self._path = None, []
        self.memory.setData([], [])
        if len(e):
            self.setXRange(float(e[:, [0, 2]].min()), float(e[:, [0, 2]].max()), padding=0.05)
            self.setYRange(-float(e[:, [1, 3]].max()), -float(e[:, [1, 3]].min()), padding=0.05)
        self._dirty_pose = True

    def set_pose(self, pose: Pose, path: list[tuple[float, float]]) -> None:
        self._pose, self._path = pose, path
        self._dirty_pose = True

    def set_memory(self, points: np.ndarray | None) -> None:
        """(N, 4) x, z, age in frames, observed; None keeps what is shown."""
        if points is not None and points is not self._points:
            self._points = points
            self._dirty_points = True

    # ---- drawing ------------------------------------------------------------------------
    def refresh(self) -> None:
        if self._dirty_points and self._points is not None:
            p = self._points
            idx = np.clip((p[:, 2] / AGE_HORIZON * (_LUT_SIZE - 1)).astype(int), 0, _LUT_SIZE - 1)
            self.memory.setData(p[:, 0], -p[:, 1], brush=list(self._brushes[idx]))
            self._dirty_points = False
        if self._dirty_pose and self._pose is not None:
            if self._path:
                xz = np.asarray(self._path, dtype=np.float64)
                self.path.setData(xz[:, 0], -xz[:, 1])
            x, _, z = self._pose.position
            self.frustum.setData(*frustum_outline(x, z, self._pose.yaw, self._fov))
            self.eye.setData([x], [-z])
            self._dirty_pose = False


def frustum_outline(x: float, z: float, yaw_deg: float, fov_deg: float,
                    length: float = FRUSTUM_M) -> tuple[np.ndarray, np.ndarray]:
    """Closed triangle eye -> left edge -> right edge -> eye, in map coordinates (x, -z)."""
    half = math.radians(fov_deg) / 2.0     # square frames: the horizontal FOV equals the vertical one
    pts = [(x, z)]
    for a in (math.radians(yaw_deg) + half, math.radians(yaw_deg) - half):
        pts.append((x - math.sin(a) * length, z - math.cos(a) * length))   # yaw 0 looks along -z
    pts.append((x, z))
    arr = np.asarray(pts)
    return arr[:, 0], -arr[:, 1]
