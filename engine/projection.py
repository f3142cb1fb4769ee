"""Lifting latent cells to world points and splatting points into a camera, in torch.

Shared by the spatial memory (read/write at inference) and the world-model
trainer (building canvases for whole batches), so that training sees exactly the
canvases inference will produce. Cameras follow engine/camera.py: OpenGL axes,
depth along the viewing axis, intrinsics from the vertical FOV at latent size.
"""
from __future__ import annotations

import math

import torch

NEAR = 0.05
SURFACE_TOL = 0.15  # points within 15% of the nearest depth in a cell count as the same surface
# (a cell on a floor or a wall seen at a grazing angle spans that much depth; a smaller
# tolerance lets neighbouring views' points shadow the view's own cells)


def cell_rays(cells: int, fov_deg: float, device=None) -> torch.Tensor:
    """Camera-frame directions (cells*cells, 3) with z = -1 through each cell centre."""
    f = 0.5 * cells / math.tan(math.radians(fov_deg) / 2.0)
    c = (torch.arange(cells, dtype=torch.float32, device=device) + 0.5 - 0.5 * cells) / f
    y, x = torch.meshgrid(-c, c, indexing="ij")  # row 0 is the top of the image: +y
    return torch.stack([x, y, -torch.ones_like(x)], dim=-1).reshape(-1, 3)


def lift(depth_cells: torch.Tensor, c2w: torch.Tensor, fov_deg: float) -> torch.Tensor:
    """World points of every cell: depth (B, S, S) metres, c2w (B, 4, 4) -> (B, S*S, 3)."""
    b, s, _ = depth_cells.shape
    rays = cell_rays(s, fov_deg, depth_cells.device)                     # (N, 3)
    cam = rays[None] * depth_cells.reshape(b, -1, 1)                      # (B, N, 3)
    return cam @ c2w[:, :3, :3].transpose(1, 2) + c2w[:, None, :3, 3]


def project(points: torch.Tensor, c2w: torch.Tensor, cells: int, fov_deg: float, with_offset: bool = False):
    """Points (B, N, 3) into cameras (B, 4, 4): (flat cell index (B, N), depth (B, N), in-view (B, N)),
    plus the squared distance from the cell centre in cells (B, N) when with_offset."""
    r = c2w[:, :3, :3]
    cam = (points - c2w[:, None, :3, 3]) @ r                              # world -> camera (R^T p)
    z = -cam[..., 2]
    f = 0.5 * cells / math.tan(math.radians(fov_deg) / 2.0)
    zs = z.clamp(min=NEAR)
    u = cam[..., 0] / zs * f + 0.5 * cells
    v = -cam[..., 1] / zs * f + 0.5 * cells
    ok = (z > NEAR) & (u >= 0) & (u < cells) & (v >= 0) & (v < cells)
    uf, vf = u.floor().clamp(0, cells - 1), v.floor().clamp(0, cells - 1)
    idx = vf.long() * cells + uf.long()
    if with_offset:
        return idx, z, ok, (u - uf - 0.5) ** 2 + (v - vf - 0.5) ** 2
    return idx, z, ok


def splat_index(points: torch.Tensor, valid: torch.Tensor, c2w: torch.Tensor, cells: int, fov_deg: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which point each target cell shows: the depth test of `splat` without touching features.

    points (B, N, 3), valid (B, N) bool, c2w (B, 4, 4) -> (cell (M,) flat over B*S*S, point (M,) flat
    over B*N, depth (B*S*S,) nearest depth per cell, inf where empty). Features are gathered by the
    caller for the M winners only, which is what keeps a read of a large memory cheap.
    """
    b = points.shape[0]
    flat, z, off, keep = project_visible(points, valid, c2w, cells, fov_deg)
    cell, win, zmin = depth_test(flat, z, off, b * cells * cells)
    return cell, keep[win], zmin


def project_visible(points: torch.Tensor, valid: torch.Tensor, c2w: torch.Tensor, cells: int, fov_deg: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The points inside the view: flat cell over B*S*S (K,), depth (K,), squared offset from the cell
    centre (K,) and their index (K,) flat over B*N."""
    b = points.shape[0]
    idx, z, ok, off = project(points, c2w, cells, fov_deg, with_offset=True)
    # Compact to the points inside the view first: a full memory holds mostly points the
    # camera cannot see, and every later pass then touches only the visible ones.
    keep = (ok & valid).reshape(-1).nonzero().squeeze(1)
    flat = (idx + torch.arange(b, device=idx.device)[:, None] * cells * cells).reshape(-1)[keep]
    return flat, z.reshape(-1)[keep], off.reshape(-1)[keep], keep


def depth_test(flat: torch.Tensor, z: torch.Tensor, off: torch.Tensor, n_cells: int
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Winners among projected points (cell (K,), depth, squared centre offset): (cell (M,), index (M,)
    into the K points, nearest depth per cell (n_cells,))."""
    zmin = torch.full((n_cells,), float("inf"), device=z.device, dtype=z.dtype)
    zmin.scatter_reduce_(0, flat, z, reduce="amin", include_self=True)
    # Depth test with a tolerance: every point on the front surface of a cell is a candidate,
    # and among them the one projecting closest to the cell centre wins. A view seen before
    # from the same pose then reads back its own cells exactly, not a neighbour's shifted ones.
    front = z <= zmin[flat] * (1.0 + SURFACE_TOL)
    score = torch.where(front, off + z * 1e-4, torch.full_like(z, float("inf")))
    best = torch.full((n_cells,), float("inf"), device=z.device, dtype=z.dtype)
    best.scatter_reduce_(0, flat, score, reduce="amin", include_self=True)
    win = (front & (score <= best[flat])).nonzero().squeeze(1)
    return flat[win], win, zmin


def splat(points: torch.Tensor, feats: torch.Tensor, valid: torch.Tensor, c2w: torch.Tensor,
          cells: int, fov_deg: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest-point-wins projection of feature points into target cameras.

    points (B, N, 3), feats (B, N, C), valid (B, N) bool, c2w (B, 4, 4)
    -> canvas (B, C, S, S), mask (B, 1, S, S) in {0, 1}, depth (B, 1, S, S) metres (0 where empty).
    """
    b, _, c = feats.shape
    cell, point, zmin = splat_index(points, valid, c2w, cells, fov_deg)
    return fill_canvas(cell, feats.reshape(-1, c)[point], zmin, b, cells)


def fill_canvas(cell: torch.Tensor, feats: torch.Tensor, zmin: torch.Tensor, b: int, cells: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Canvas (B, C, S, S), mask and depth from the winners of `splat_index` and their features (M, C)."""
    s2, c = cells * cells, feats.shape[1]
    canvas = torch.zeros(b * s2, c, device=feats.device, dtype=feats.dtype)
    canvas[cell] = feats
    mask = torch.zeros(b * s2, device=feats.device, dtype=feats.dtype)
    mask[cell] = 1.0
    depth = torch.where(torch.isfinite(zmin), zmin, torch.zeros_like(zmin)).to(feats.dtype)
    canvas = canvas.reshape(b, cells, cells, c).permute(0, 3, 1, 2)
    return canvas, mask.reshape(b, 1, cells, cells), depth.reshape(b, 1, cells, cells)


def plucker(c2w_target: torch.Tensor, c2w_ref: torch.Tensor, cells: int, fov_deg: float) -> torch.Tensor:
    """Plucker ray map (B, 6, S, S) of the target camera expressed in the reference camera's frame.

    Direction d and moment o x d per cell: the generator's view of the camera motion.
    """
    rel = torch.linalg.inv(c2w_ref) @ c2w_target                          # target -> reference frame
    rays = cell_rays(cells, fov_deg, c2w_target.device)
    d = rays @ rel[:, :3, :3].transpose(1, 2)
    d = d / d.norm(dim=-1, keepdim=True)
    o = rel[:, None, :3, 3].expand_as(d)
    m = torch.cross(o, d, dim=-1)
    b = c2w_target.shape[0]
    return torch.cat([d, m], dim=-1).reshape(b, cells, cells, 6).permute(0, 3, 1, 2)


def pose_matrix(position, yaw_deg, pitch_deg) -> torch.Tensor:
    """Batched camera-to-world (B, 4, 4) from tensors of positions (B, 3), yaw (B,), pitch (B,) in degrees."""
    y, p = torch.deg2rad(yaw_deg), torch.deg2rad(pitch_deg)
    cy, sy, cp, sp = torch.cos(y), torch.sin(y), torch.cos(p), torch.sin(p)
    zero, one = torch.zeros_like(y), torch.ones_like(y)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(-1, 3, 3)
    m = torch.eye(4, dtype=position.dtype, device=position.device).repeat(len(y), 1, 1)
    m[:, :3, :3] = ry @ rx
    m[:, :3, 3] = position
    return m
