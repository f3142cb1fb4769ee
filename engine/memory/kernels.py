"""Fused CPU kernels (numba) for the latent memory's read: which stored points a camera sees,
and which of them wins each latent cell.

Why a kernel: in eager torch every step of the projection (gather the chunk test per
point, rebuild positions, rotate, divide, range tests, floor, compaction, two scatter
passes) is its own pass over memory with its own dispatch cost. That cost follows the
number of points in the chunks the camera may see, so a read of a well-filled memory
cost twice what an early one did (`mirage bench`'s scaling curve). One loop per pass
touches each stored slot once and each visible point twice, which makes that growth a
small share of the step. The math is the same as engine/projection.py (`project`,
`depth_test`), in float64 so that rounding cannot move a point across a cell border.

Only used for memories on the CPU; on CUDA the torch path runs (it is parallel there).
"""
from __future__ import annotations

import math

import numpy as np

try:
    import numba

    HAVE_NUMBA = True
except ImportError:                                   # pragma: no cover - numba is a dependency
    numba = None
    HAVE_NUMBA = False


def cpu_kernel(fn):
    if not HAVE_NUMBA:
        return fn
    # nogil: the explorer's GUI thread keeps running while a worker thread reads memory.
    return numba.njit(cache=True, nogil=True)(fn)


@cpu_kernel
def chunks_in_frustum(centres, n, c2w, fov_deg, radius, near):
    """Bool per chunk (the first n rows of centres): may the sphere of this radius around its
    centre reach into the camera's view frustum? The test of memory_chunks.ChunkIndex.in_frustum,
    in float64 and inside the kernel, so a read makes no torch call for it."""
    tan = math.tan(math.radians(fov_deg) / 2.0)       # square image: the same both ways
    k = 1.0 / math.sqrt(1.0 + tan * tan)               # side planes' normal scale
    tx, ty, tz = c2w[0, 3], c2w[1, 3], c2w[2, 3]
    ok = np.empty(n, np.bool_)
    for c in range(n):
        dx, dy, dz = centres[c, 0] - tx, centres[c, 1] - ty, centres[c, 2] - tz
        x = dx * c2w[0, 0] + dy * c2w[1, 0] + dz * c2w[2, 0]
        y = dx * c2w[0, 1] + dy * c2w[1, 1] + dz * c2w[2, 1]
        depth = -(dx * c2w[0, 2] + dy * c2w[1, 2] + dz * c2w[2, 2])
        ok[c] = depth > near - radius and (max(abs(x), abs(y)) - tan * depth) * k < radius
    return ok


@cpu_kernel
def visible_points(hw, frame, chunk, n_chunks, chunk_radius, off, off_scale, centres, c2w, fov_deg, cells, near):
    """Stored points that land inside the camera's image at latent resolution.

    hw: slots below it may be in use; frame (N,) int32, -1 marks a free slot; chunk (N,)
    int32 ids of the first n_chunks rows of centres (chunks, 3), whose spheres of
    chunk_radius are tested against the frustum first; off (N, 3) int16 fixed-point offsets
    from the chunk centre, times off_scale metres; c2w (4, 4) float64. Returns slot (K,)
    int64, flat cell (K,) int64, depth (K,) float32 and squared distance from the cell
    centre in cells (K,) float32.
    """
    chunk_ok = chunks_in_frustum(centres, n_chunks, c2w, fov_deg, chunk_radius, near)
    f = 0.5 * cells / math.tan(math.radians(fov_deg) / 2.0)
    half = 0.5 * cells
    lim = (half + 0.01) / f          # a loose |x| / z bound that skips the divisions for most misses
    tx, ty, tz = c2w[0, 3], c2w[1, 3], c2w[2, 3]
    # Pass 1 streams the per-slot arrays once; pass 2 projects only the chunk-test survivors.
    cand = np.empty(hw, np.int64)
    n = 0
    for i in range(hw):
        if frame[i] >= 0 and chunk_ok[chunk[i]]:
            cand[n] = i
            n += 1
    slot = np.empty(n, np.int64)
    flat = np.empty(n, np.int64)
    depth = np.empty(n, np.float32)
    offset = np.empty(n, np.float32)
    k = 0
    for j in range(n):
        i = cand[j]
        c = chunk[i]
        dx = centres[c, 0] + off[i, 0] * off_scale - tx
        dy = centres[c, 1] + off[i, 1] * off_scale - ty
        dz = centres[c, 2] + off[i, 2] * off_scale - tz
        # world -> camera is R^T (p - t): column j of c2w's rotation dotted with the offset
        z = -(dx * c2w[0, 2] + dy * c2w[1, 2] + dz * c2w[2, 2])
        if z <= near:
            continue
        x = dx * c2w[0, 0] + dy * c2w[1, 0] + dz * c2w[2, 0]
        if abs(x) > lim * z:
            continue
        y = dx * c2w[0, 1] + dy * c2w[1, 1] + dz * c2w[2, 1]
        if abs(y) > lim * z:
            continue
        u = x / z * f + half
        v = -y / z * f + half
        if u < 0.0 or u >= cells or v < 0.0 or v >= cells:   # the exact test, as projection.project
            continue
        uf = min(math.floor(u), cells - 1)
        vf = min(math.floor(v), cells - 1)
        slot[k] = i
        flat[k] = int(vf) * cells + int(uf)
        depth[k] = z
        offset[k] = (u - uf - 0.5) ** 2 + (v - vf - 0.5) ** 2
        k += 1
    return slot[:k], flat[:k], depth[:k], offset[:k]


@cpu_kernel
def depth_test(flat, z, off, n_cells, surface_tol, slot, frame, observed, recent):
    """Winner per cell among projected points, as engine/projection.depth_test: the front
    surface of each cell is every point within surface_tol of its nearest depth, and among
    those the one projecting closest to the cell centre wins. Points of slot (from
    `visible_points`) that are generated (observed False) in a frame after `recent` take no
    part: the read's skip of recent generated frames, done here rather than as a torch mask
    over every visible point first (that pass cost as much as the test itself once memory
    was full). A `recent` above every frame keeps all points.

    Returns cell (M,) int64, index (M,) int64 into the points, nearest depth per cell
    (n_cells,) float32 (inf where empty).
    """
    n = flat.shape[0]
    use = np.empty(n, np.bool_)
    for j in range(n):
        use[j] = observed[slot[j]] or frame[slot[j]] <= recent
    zmin = np.full(n_cells, np.inf, np.float32)
    for j in range(n):
        if use[j] and z[j] < zmin[flat[j]]:
            zmin[flat[j]] = z[j]
    best = np.full(n_cells, np.inf, np.float32)
    win = np.full(n_cells, -1, np.int64)
    for j in range(n):
        if not use[j]:
            continue
        c = flat[j]
        if z[j] <= zmin[c] * (1.0 + surface_tol):
            score = off[j] + z[j] * np.float32(1e-4)
            if score < best[c]:
                best[c] = score
                win[c] = j
    cells = np.nonzero(win >= 0)[0].astype(np.int64)
    return cells, win[cells], zmin


@cpu_kernel
def carve_select(slot, flat, z, depth_flat, keep_frac, observed, by_observation):
    """Slots a new frame sees through: in view (slot, flat cell, depth from `visible_points`)
    and nearer than keep_frac (float32) times the frame's depth in that cell. A generated
    frame (by_observation False) never frees an observed point. As the torch path of
    LatentMemory._carve, in float32, in the same order."""
    out = np.empty(slot.shape[0], np.int64)
    k = 0
    for j in range(slot.shape[0]):
        if z[j] < depth_flat[flat[j]] * keep_frac and (by_observation or not observed[slot[j]]):
            out[k] = slot[j]
            k += 1
    return out[:k]
