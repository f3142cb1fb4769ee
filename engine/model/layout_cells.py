"""The scene layout as the generator takes it: nine channels per latent cell.

    logdepth   1   log of the cell's depth in metres (the depth memory lifts the cell with)
    normal     3   mean camera-frame surface normal over the cell's pixels
    classes    5   share of the cell's pixels of each material class (floor, wall, ceiling,
                   furniture, picture surface); they sum to 1 where the layout is on

Layout off is all nine at zero, which no real layout gives (the class shares sum to 1), so the
one network tells the two modes apart. The cell depth is the same centre-of-cell depth the
autoencoder's depth head gives memory (engine/model/autoencoder.cell_depth), taken from exact
geometry instead of a prediction: a revisit lifts the same cells to the same points.

Only geometry reaches these channels: engine/world/layout.py draws no colour, so nothing of
the ground-truth renderer's appearance can reach the generator through them.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.model.autoencoder import MIN_DEPTH, cell_depth
from engine.world.layout import CLASSES, Layout, LayoutRenderer

LAYOUT_CHANNELS = 1 + 3 + len(CLASSES)
# The decoder's full-resolution layout adds periodic features of each pixel's surface coordinates
# (the face's two world axes, metres; engine/world/layout.py): sine and cosine of both at these
# frequencies (cycles a metre). The renderer anchors every pattern to those coordinates, so where a
# pattern's tiles or stripes fall is geometry; a pattern that is the same in every level (ceiling
# tiles, corridor stripes) becomes drawable where the generator's latent is only a colour field.
UV_FREQS = (0.75, 1.5, 3.0, 6.0)
PIXEL_CHANNELS = LAYOUT_CHANNELS + 4 * len(UV_FREQS) + 1   # the last: the surface is a corridor's


class Planes:
    """A batch of layouts as tensors, each made once: depth (N, 1, H, W) metres, normal (N, 3, H, W)
    (zero where nothing was drawn), one-hot class (N, 5, H, W) (all zero where nothing was drawn:
    class 255 counts in no class; inside a level there are none). Cells and pixels derive from it."""

    def __init__(self, layout: Layout) -> None:
        self.depth = torch.from_numpy(np.ascontiguousarray(layout.depth, dtype=np.float32))[:, None]
        self.normal = torch.from_numpy(np.ascontiguousarray(layout.normal, dtype=np.float32)).permute(0, 3, 1, 2)
        material = torch.from_numpy(np.ascontiguousarray(layout.material)).long()
        n, _, h, w = self.depth.shape
        onehot = torch.zeros(n, len(CLASSES) + 1, h, w)
        onehot.scatter_(1, material.clamp(max=len(CLASSES))[:, None], 1.0)
        self.classes = onehot[:, :len(CLASSES)]
        self.corridor = None if layout.corridor is None else torch.from_numpy(
            np.ascontiguousarray(layout.corridor, dtype=np.float32))[:, None]
        self.uv = None if layout.uv is None else torch.from_numpy(
            np.ascontiguousarray(layout.uv, dtype=np.float32)).permute(0, 3, 1, 2)
        self.room = None if layout.room is None else torch.from_numpy(
            np.ascontiguousarray(layout.room, dtype=np.int64))[:, None]
        self.material = material[:, None]

    def segments(self) -> torch.Tensor:
        """Each pixel's appearance segment (N, 1, H, W) long, -1 for none (engine/model/segments.py)."""
        from engine.model.segments import segments_of

        room = self.room if self.room is not None else torch.full_like(self.depth, -1, dtype=torch.int64)
        return segments_of(room, self.material)


def layout_cells(layout: Layout | Planes, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of layouts (N, H, W) -> (channels (N, 9, cells, cells), cell depth (N, 1, cells, cells) metres)."""
    planes = layout if isinstance(layout, Planes) else Planes(layout)
    _, _, h, w = planes.depth.shape
    if h != w or h % cells:
        raise ValueError(f"a {h}x{w} layout does not tile into {cells}x{cells} cells")
    k = h // cells
    cd = cell_depth(planes.depth, cells)
    normal = torch.nn.functional.avg_pool2d(planes.normal, k)
    shares = torch.nn.functional.avg_pool2d(planes.classes, k)
    feats = torch.cat([cd.clamp(min=0.05).log(), normal, shares], dim=1)
    return feats, cd


def layout_pixels(layout: Layout | Planes, max_depth: float) -> torch.Tensor:
    """A batch of layouts (N, H, W) -> the decoder's full-resolution layout (N, 25, H, W): the same
    nine channels per pixel (log depth clamped to the depth head's range, normal, one-hot class),
    then for each of UV_FREQS the sine and cosine of both surface coordinates. A pixel where nothing
    was drawn is all zero, as layout off is everywhere. A decoder with the nine-channel input of
    v2 stage 2-3 reads the first nine (engine/model/autoencoder.Decoder)."""
    planes = layout if isinstance(layout, Planes) else Planes(layout)
    drawn = planes.classes.sum(1, keepdim=True)
    logd = planes.depth.clamp(MIN_DEPTH, max_depth).log() * drawn
    uv = planes.uv if planes.uv is not None else torch.zeros_like(planes.normal[:, :2])
    # All frequencies at once (this runs every frame): per frequency sin u, sin v, cos u, cos v.
    a = uv[:, None] * _UV_RADIANS                                            # (N, F, 2, H, W)
    n, _, h, w = uv.shape
    waves = torch.stack([torch.sin(a), torch.cos(a)], dim=2).reshape(n, 4 * len(UV_FREQS), h, w) * drawn
    corridor = planes.corridor if planes.corridor is not None else torch.zeros_like(drawn)
    return torch.cat([logd, planes.normal * drawn, planes.classes, waves, corridor], dim=1)


_UV_RADIANS = (2 * np.pi * torch.tensor(UV_FREQS, dtype=torch.float32)).view(1, -1, 1, 1, 1)


def surface_planes(layout: Layout | Planes) -> torch.Tensor:
    """What a decoder with appearance codes reads beside the layout pixels (N, 3, H, W) float32: the
    surface coordinates themselves (metres, where the texture field evaluates its patterns) and the
    appearance segment + 1 (0: none). float32: a pattern of 10 cycles a metre needs the coordinates
    to a few millimetres, which float16 loses beyond 16 m."""
    uv, seg = surface_and_segments(layout)
    return torch.cat([uv, (seg + 1).float()], dim=1)


def surface_and_segments(layout: Layout | Planes) -> tuple[torch.Tensor, torch.Tensor]:
    """(surface coordinates (N, 2, H, W) metres, zero where nothing is drawn; appearance segments
    (N, 1, H, W) long, -1 none): what surface_planes packs into one tensor, unpacked."""
    planes = layout if isinstance(layout, Planes) else Planes(layout)
    uv = planes.uv if planes.uv is not None else torch.zeros_like(planes.normal[:, :2])
    return uv * planes.classes.sum(1, keepdim=True), planes.segments()


def split_surface(surface: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """surface_planes' output -> (surface coordinates (N, 2, H, W), segment ids (N, 1, H, W) long, -1 none)."""
    return surface[:, :2], surface[:, 2:3].round().long() - 1


def layout_off(n: int, cells: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The layout channels of layout off: zeros (N, 9, cells, cells); at full resolution too
    (cells = the image side) for a decoder that takes the layout."""
    return torch.zeros(n, LAYOUT_CHANNELS, cells, cells, device=device)


class SceneLayout:
    """A session's layout source: the layout of one level at a model's resolution, as cells.

    Sessions walking in lockstep (memory on and off) share one, and the last pose's cells are
    kept, so the G-buffer pass runs once a frame however many sessions read it. Its GL context
    is made current on every call (engine/world/layout.py), so it may be built in one thread
    and used in another, one thread at a time.
    """

    def __init__(self, level, image_size: int, cells: int, fov_deg: float, max_depth: float = 30.0) -> None:
        self.renderer = LayoutRenderer(level, image_size, image_size, fov_deg)
        self.cells = cells
        self.max_depth = max_depth
        self._last: tuple[bytes, Planes] | None = None
        self._cells: tuple[torch.Tensor, torch.Tensor] | None = None
        self._pixels: torch.Tensor | None = None
        self._surface: torch.Tensor | None = None

    @classmethod
    def for_model(cls, level, model) -> "SceneLayout":
        """The layout source a WorldModel's session reads: its frame size, latent grid, field of
        view and depth range."""
        return cls(level, model.image_size, model.cells, model.cfg.fov_deg, model.cfg.autoencoder.max_depth)

    def set_level(self, level) -> None:
        self.renderer.set_level(level)
        self._last = None

    def _layout(self, pose) -> Planes:
        key = np.asarray(pose.c2w(), dtype=np.float64).tobytes()
        if self._last is None or self._last[0] != key:
            self._last = (key, Planes(self.renderer.layout([pose])))
            self._cells = self._pixels = self._surface = None
        return self._last[1]

    def cells_at(self, pose) -> tuple[torch.Tensor, torch.Tensor]:
        """(channels (1, 9, S, S), cell depth (1, 1, S, S) metres) of the view from `pose`."""
        layout = self._layout(pose)
        if self._cells is None:
            self._cells = layout_cells(layout, self.cells)
        return self._cells

    def pixels_at(self, pose) -> torch.Tensor:
        """The full-resolution layout (1, 9, H, W) of the view from `pose`, as a layout decoder takes it."""
        layout = self._layout(pose)
        if self._pixels is None:
            self._pixels = layout_pixels(layout, self.max_depth)
        return self._pixels

    def surface_at(self, pose) -> tuple[torch.Tensor, torch.Tensor]:
        """(surface coordinates (1, 2, H, W) metres, appearance segments (1, 1, H, W) long, -1 none) of
        the view from `pose` (engine/model/appearance.py)."""
        layout = self._layout(pose)
        if self._surface is None:
            self._surface = surface_and_segments(layout)
        return self._surface

    def views_of(self, poses) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """pixels_at and surface_at of many poses at once, from one G-buffer pass and no cache (eval):
        (pixels, surface coordinates, appearance segments)."""
        planes = Planes(self.renderer.layout(list(poses)))
        return (layout_pixels(planes, self.max_depth), *surface_and_segments(planes))

    def close(self) -> None:
        self.renderer.close()
