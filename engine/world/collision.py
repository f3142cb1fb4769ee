"""Where a body can stand and walk in a level: clearance, sliding moves, paths, free points.

The walkable floor is the union of room and corridor rectangles minus the footprints of
solid boxes. Two views of it serve two needs:

- Exact queries (clearance, is_free, line_free, move) measure against the rectangles
  themselves, so "free with the body radius" means exactly that, and every point of a
  segment that passes line_free is free. This is what trajectory checks rely on.
- A raster (2.5 cm cells) with cv2.distanceTransform serves bulk work: the coarse
  planning grid of shortest_path and the pool random_free_point draws from. Raster error
  is harmless there because planning nodes keep a margin that covers it and every
  segment a path keeps is checked exactly.
"""
from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from engine.world.geometry import BODY_RADIUS
from engine.world.levels import Level, generate_level

MAX_SUBSTEP = 0.05   # metres: one collision sub-step of move(), far thinner than any wall
PLAN_CELL = 0.10     # metres between planning nodes
_EPS = 1e-7


def _point_box_dist(x: np.ndarray, z: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, M) distances from N points to M closed boxes (lo_x, lo_z, hi_x, hi_z); 0 inside."""
    dx = np.maximum(np.maximum(boxes[:, 0] - x[:, None], 0.0), x[:, None] - boxes[:, 2])
    dz = np.maximum(np.maximum(boxes[:, 1] - z[:, None], 0.0), z[:, None] - boxes[:, 3])
    return np.sqrt(dx * dx + dz * dz)


def _union_boundary(rects: np.ndarray) -> np.ndarray:
    """Boundary of a union of closed rectangles as degenerate boxes (axis-aligned segments).

    Each rectangle edge is cut at every other rectangle's coordinates; a piece is boundary
    when the union lies on exactly one side of it (a corridor's end, which opens into a
    room, and the room wall's door gap both drop out).
    """
    def inside(px: float, pz: float) -> bool:
        return bool(np.any((rects[:, 0] <= px) & (px <= rects[:, 2]) & (rects[:, 1] <= pz) & (pz <= rects[:, 3])))

    cuts = (np.unique(rects[:, [0, 2]]), np.unique(rects[:, [1, 3]]))
    segs: list[tuple[float, float, float, float]] = []
    for lo_x, lo_z, hi_x, hi_z in rects:
        edges = ((0, lo_x, lo_z, hi_z), (0, hi_x, lo_z, hi_z), (1, lo_z, lo_x, hi_x), (1, hi_z, lo_x, hi_x))
        for fixed, coord, a, b in edges:  # fixed: the axis the edge does not run along
            along = cuts[1 - fixed]
            stops = [a, *along[(along > a) & (along < b)], b]
            run = None
            for s, t in zip(stops[:-1], stops[1:]):
                m = 0.5 * (s + t)
                side = (inside(coord - _EPS, m), inside(coord + _EPS, m)) if fixed == 0 else \
                       (inside(m, coord - _EPS), inside(m, coord + _EPS))
                if side[0] != side[1]:  # pieces are contiguous, so a boundary run just extends
                    run = (run[0], t) if run is not None else (s, t)
                elif run is not None:
                    segs.append(_seg(fixed, coord, *run))
                    run = None
            if run is not None:
                segs.append(_seg(fixed, coord, *run))
    return np.array(segs, dtype=np.float64).reshape(-1, 4)


def _seg(fixed: int, coord: float, s: float, t: float) -> tuple[float, float, float, float]:
    return (coord, s, coord, t) if fixed == 0 else (s, coord, t, coord)


class CollisionMap:
    """Free space of `level` at time `t` for a round body of `radius` metres (xz plane)."""

    def __init__(self, level: Level, radius: float = BODY_RADIUS, cell: float = 0.025, t: float = 0.0) -> None:
        self.level, self.radius, self.cell = level, float(radius), float(cell)
        self.walk = np.array([(lo[0], lo[1], hi[0], hi[1]) for lo, hi in level.walkable_rects()], dtype=np.float64)
        self.solids = np.array([(b.lo[0], b.lo[2], b.hi[0], b.hi[2]) for b in level.boxes_at(t) if b.solid],
                               dtype=np.float64).reshape(-1, 4)
        self.edges = _union_boundary(self.walk)
        self._obstacles = np.concatenate([self.edges, self.solids])
        self._all_boxes = np.ascontiguousarray(np.concatenate([self._obstacles, self.walk]).T)  # (4, K)
        self._rasterise()
        self._plans: dict[float, tuple[np.ndarray, np.ndarray, int]] = {}

    # ---- raster ------------------------------------------------------------------------
    def _rasterise(self) -> None:
        c, margin = self.cell, 0.5
        self.origin = (float(self.walk[:, 0].min() - margin), float(self.walk[:, 1].min() - margin))
        w = int(math.ceil((self.walk[:, 2].max() + margin - self.origin[0]) / c))
        h = int(math.ceil((self.walk[:, 3].max() + margin - self.origin[1]) / c))
        free = np.zeros((h, w), np.uint8)  # rows: z, columns: x; a cell counts by its centre

        def span(lo: float, hi: float, o: float, n: int, closed: bool) -> slice:
            a, b = (lo - o) / c - 0.5, (hi - o) / c - 0.5
            first, last = (math.ceil(a), math.floor(b)) if closed else (math.floor(a) + 1, math.ceil(b) - 1)
            return slice(max(first, 0), max(min(last + 1, n), 0))

        for lo_x, lo_z, hi_x, hi_z in self.walk:
            free[span(lo_z, hi_z, self.origin[1], h, True), span(lo_x, hi_x, self.origin[0], w, True)] = 1
        for lo_x, lo_z, hi_x, hi_z in self.solids:  # open boxes: a footprint's edge itself stays walkable
            free[span(lo_z, hi_z, self.origin[1], h, False), span(lo_x, hi_x, self.origin[0], w, False)] = 0
        self.free_raster = free
        # Metres from each cell centre to the nearest blocked centre. For obstacles at least
        # two cells thick (every solid here) this overestimates the clearance by at most
        # sqrt(2) cells and never underestimates it.
        self.raster = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) * c
        self.raster_error = math.sqrt(2.0) * c

    def _plan(self, radius: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Planning nodes for `radius`: free mask, 4-connected component labels, main label."""
        key = round(radius, 6)
        if key not in self._plans:
            k = max(1, round(PLAN_CELL / self.cell))
            sub = self.raster[k // 2::k, k // 2::k]
            # A node keeps enough clearance that the whole straight step to a 4-neighbour
            # is free even after the raster's own error.
            need = math.hypot(radius, 0.5 * k * self.cell) + self.raster_error + 1e-4
            mask = (sub >= need).astype(np.uint8)
            n, labels = cv2.connectedComponents(mask, connectivity=4)
            counts = np.bincount(labels.ravel(), minlength=n)
            counts[0] = 0
            self._plans[key] = (mask, labels, int(np.argmax(counts)) if n > 1 else -1)
        return self._plans[key]

    def _node_xz(self, i: np.ndarray | int, j: np.ndarray | int) -> tuple:
        k = max(1, round(PLAN_CELL / self.cell))
        return (self.origin[0] + (k // 2 + np.asarray(j) * k + 0.5) * self.cell,
                self.origin[1] + (k // 2 + np.asarray(i) * k + 0.5) * self.cell)

    # ---- exact queries -----------------------------------------------------------------
    def clearance(self, x: float | np.ndarray, z: float | np.ndarray) -> float | np.ndarray:
        """Metres from (x, z) to the nearest wall or solid footprint; <= 0 outside free space.

        Accepts scalars or arrays. Inside a wall or furniture the value is minus the depth
        (exact for a single box or the outside, a fair estimate where they overlap).
        """
        if np.ndim(x) == 0 and np.ndim(z) == 0:
            return self._signed_one(float(x), float(z))
        xs, zs = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(z, np.float64))
        return self._signed(xs.ravel(), zs.ravel()).reshape(xs.shape)

    def _signed_one(self, x: float, z: float) -> float:
        """_signed for one point with 1-D arrays: a third of the cost, and move() lives on it."""
        b, n_ob, n_edge = self._all_boxes, len(self._obstacles), len(self.edges)
        gx, gz = np.maximum(b[0] - x, x - b[2]), np.maximum(b[1] - z, z - b[3])
        px, pz = np.maximum(gx[:n_ob], 0.0), np.maximum(gz[:n_ob], 0.0)
        d2 = px * px + pz * pz
        gap = np.maximum(gx, gz)
        if gap[n_ob:].min() > 0.0:  # off the floor: minus the way back to it
            return -math.sqrt(float(d2[:n_edge].min()))
        dist = math.sqrt(float(d2.min()))
        solid = float(gap[n_edge:n_ob].min()) if n_ob > n_edge else math.inf
        return solid if solid < 0.0 else dist

    def _signed(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        # Per box, how far outside it the point lies along each axis (negative inside), in one pass
        # over obstacles, solids and walkable rectangles together: this runs in every move sub-step.
        b, n_ob, n_edge = self._all_boxes, len(self._obstacles), len(self.edges)
        gx = np.maximum(b[0] - x[:, None], x[:, None] - b[2])
        gz = np.maximum(b[1] - z[:, None], z[:, None] - b[3])
        d2 = np.maximum(gx[:, :n_ob], 0.0) ** 2 + np.maximum(gz[:, :n_ob], 0.0) ** 2
        gap = np.maximum(gx, gz)
        in_walk = (gap[:, n_ob:] <= 0.0).any(axis=1)
        solid = gap[:, n_edge:n_ob].min(axis=1, initial=np.inf)  # < 0: that deep inside a solid
        off_floor = -np.sqrt(d2[:, :n_edge].min(axis=1))
        return np.where(~in_walk, off_floor, np.where(solid < 0.0, solid, np.sqrt(d2.min(axis=1))))

    def is_free(self, x: float, z: float, radius: float | None = None) -> bool:
        """True when a body of `radius` (default: the map's) centred at (x, z) touches nothing."""
        return bool(self.clearance(x, z) >= (self.radius if radius is None else radius))

    def line_free(self, a: tuple[float, float], b: tuple[float, float], radius: float | None = None) -> bool:
        """True when the body can slide straight from a to b: every point of the segment is free."""
        r = self.radius if radius is None else radius
        if not self.is_free(a[0], a[1], r):
            return False  # b is then free too unless the segment comes within r of something
        o = self._obstacles
        near = ((o[:, 0] <= max(a[0], b[0]) + r) & (o[:, 2] >= min(a[0], b[0]) - r)
                & (o[:, 1] <= max(a[1], b[1]) + r) & (o[:, 3] >= min(a[1], b[1]) - r))
        return bool(self._segment_dist(a, b, o[near]).min(initial=np.inf) >= r)

    @staticmethod
    def _segment_dist(a: tuple[float, float], b: tuple[float, float], o: np.ndarray) -> np.ndarray:
        """Distance from segment ab to every obstacle box (0 where it crosses one).

        Between a segment and a box that do not meet, the nearest pair is an endpoint of
        one against the other, so endpoints-to-box and corners-to-segment cover it.
        """
        ax, az, bx, bz = float(a[0]), float(a[1]), float(b[0]), float(b[1])
        dx, dz = bx - ax, bz - az
        tlo, thi = np.zeros(len(o)), np.ones(len(o))
        for p0, d, lo, hi in ((ax, dx, o[:, 0], o[:, 2]), (az, dz, o[:, 1], o[:, 3])):
            if abs(d) < 1e-15:  # parallel to this slab: inside it or never
                outside = (p0 < lo) | (p0 > hi)
                thi = np.where(outside, -1.0, thi)
            else:
                t0, t1 = (lo - p0) / d, (hi - p0) / d
                tlo, thi = np.maximum(tlo, np.minimum(t0, t1)), np.minimum(thi, np.maximum(t0, t1))
        hit = tlo <= thi
        ends = _point_box_dist(np.array([ax, bx]), np.array([az, bz]), o).min(axis=0)
        cx = np.stack([o[:, 0], o[:, 0], o[:, 2], o[:, 2]], axis=1)  # (M, 4) box corners
        cz = np.stack([o[:, 1], o[:, 3], o[:, 1], o[:, 3]], axis=1)
        ll = dx * dx + dz * dz
        t = np.clip(((cx - ax) * dx + (cz - az) * dz) / ll, 0.0, 1.0) if ll > 0 else np.zeros_like(cx)
        corners = np.hypot(cx - (ax + t * dx), cz - (az + t * dz)).min(axis=1)
        return np.where(hit, 0.0, np.minimum(ends, corners))

    # ---- motion ------------------------------------------------------------------------
    def move(self, position: tuple[float, float, float], delta_xz: tuple[float, float],
             radius: float | None = None) -> tuple[float, float, float]:
        """Walk from `position` by `delta_xz`, stopping at obstacles and sliding along them.

        Sub-steps of at most MAX_SUBSTEP never skip a wall. A blocked sub-step moves along
        x as far as it can, then along z, which slides along the axis-aligned walls to
        within a millimetre of contact. A body that starts overlapping something may move
        only where its clearance grows, so it can always get out.
        """
        r = self.radius if radius is None else radius
        x, y, z = (float(v) for v in position)
        dx, dz = float(delta_xz[0]), float(delta_xz[1])
        n = max(1, math.ceil(math.hypot(dx, dz) / MAX_SUBSTEP))
        sx, sz = dx / n, dz / n
        for _ in range(n):
            if self._may_enter(self.clearance(x, z), x + sx, z + sz, r):
                x, z = x + sx, z + sz
                continue
            nx, nz = self._advance(x, z, sx, 0.0, r)
            nx, nz = self._advance(nx, nz, 0.0, sz, r)
            if (nx, nz) == (x, z):
                break
            x, z = nx, nz
        return (x, y, z)

    def _may_enter(self, here: float, nx: float, nz: float, r: float) -> bool:
        """Free at (nx, nz), or, for a body already overlapping (clearance `here`), freer."""
        c = self.clearance(nx, nz)
        return c >= r or (here < r and c > here)

    def _advance(self, x: float, z: float, dx: float, dz: float, r: float) -> tuple[float, float]:
        """The farthest point of the straight step that may be entered (bisection to 1/64)."""
        if dx == 0.0 and dz == 0.0:
            return x, z
        here = self.clearance(x, z)
        if self._may_enter(here, x + dx, z + dz, r):
            return x + dx, z + dz
        lo, hi = 0.0, 1.0
        for _ in range(6):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self._may_enter(here, x + mid * dx, z + mid * dz, r) else (lo, mid)
        return (x + lo * dx, z + lo * dz) if lo > 0.0 else (x, z)

    # ---- planning ----------------------------------------------------------------------
    def shortest_path(self, a_xz: tuple[float, float], b_xz: tuple[float, float],
                      radius: float | None = None) -> list[tuple[float, float]]:
        """A short free walk from a to b: [a, ..., b], every segment passing line_free.

        Breadth-first layers over the 10 cm planning grid (4-connected, grown with
        cv2.dilate so each layer is one vectorised step), then line-of-sight shortcuts.
        Raises ValueError naming the points when either is not free or b is unreachable.
        """
        r = self.radius if radius is None else float(radius)
        a, b = (float(a_xz[0]), float(a_xz[1])), (float(b_xz[0]), float(b_xz[1]))
        if self.line_free(a, b, r):
            return [a, b]
        mask, labels, _ = self._plan(r)
        na, nb = self._snap(a, mask, r, "start"), self._snap(b, mask, r, "goal")
        if labels[na] != labels[nb]:
            raise ValueError(f"no free path from ({a[0]:.3f}, {a[1]:.3f}) to ({b[0]:.3f}, {b[1]:.3f}) "
                             f"for radius {r} m in scene {self.level.seed}: they are in separate regions")
        cells = self._grid_route(mask, na, nb)
        xs, zs = self._node_xz(np.array([c[0] for c in cells]), np.array([c[1] for c in cells]))
        pts = [a] + [(float(u), float(v)) for u, v in zip(xs, zs)] + [b]
        return self._shortcut(pts, r)

    def _snap(self, p: tuple[float, float], mask: np.ndarray, r: float, role: str) -> tuple[int, int]:
        """A free planning node reachable from p in a straight line."""
        if not self.is_free(p[0], p[1], r):
            raise ValueError(f"{role} point ({p[0]:.3f}, {p[1]:.3f}) is not free for radius {r} m "
                             f"(clearance {self.clearance(p[0], p[1]):.3f} m) in scene {self.level.seed}")
        k = max(1, round(PLAN_CELL / self.cell))
        ci = (p[1] - self.origin[1]) / self.cell - 0.5 - k // 2
        cj = (p[0] - self.origin[0]) / self.cell - 0.5 - k // 2
        i0, j0 = int(round(ci / k)), int(round(cj / k))
        for reach in (3, 8):
            ii, jj = np.mgrid[max(i0 - reach, 0):min(i0 + reach + 1, mask.shape[0]),
                              max(j0 - reach, 0):min(j0 + reach + 1, mask.shape[1])]
            ok = mask[ii, jj] > 0
            ii, jj = ii[ok], jj[ok]
            order = np.argsort((ii - ci / k) ** 2 + (jj - cj / k) ** 2, kind="stable")
            for n in order[:24]:
                x, z = self._node_xz(int(ii[n]), int(jj[n]))
                if self.line_free(p, (float(x), float(z)), r):
                    return int(ii[n]), int(jj[n])
        raise ValueError(f"{role} point ({p[0]:.3f}, {p[1]:.3f}) is boxed in: no free way out "
                         f"for radius {r} m in scene {self.level.seed}")

    @staticmethod
    def _grid_route(mask: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        """Node cells from start to goal along 4-connected breadth-first layers."""
        dist = np.full(mask.shape, -1, np.int32)
        frontier = np.zeros_like(mask)
        frontier[start] = 1
        seen = frontier.copy()
        dist[start] = 0
        kernel = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
        layer = 0
        while not seen[goal]:
            frontier = cv2.dilate(frontier, kernel) & mask & (1 - seen)
            if not frontier.any():
                raise ValueError("planning grid: goal not reachable")  # labels said otherwise
            layer += 1
            dist[frontier > 0] = layer
            seen |= frontier
        route, (i, j) = [goal], goal
        gi, gj = start
        while (i, j) != start:
            best = None  # among the previous layer's neighbours, head most directly at the start
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ni, nj = i + di, j + dj
                if 0 <= ni < mask.shape[0] and 0 <= nj < mask.shape[1] and dist[ni, nj] == dist[i, j] - 1:
                    score = di * (gi - i) + dj * (gj - j)
                    if best is None or score > best[0]:
                        best = (score, ni, nj)
            i, j = best[1], best[2]
            route.append((i, j))
        route.reverse()
        keep = [route[0]] + [route[n] for n in range(1, len(route) - 1)  # drop straight-run interiors
                             if (route[n][0] - route[n - 1][0], route[n][1] - route[n - 1][1])
                             != (route[n + 1][0] - route[n][0], route[n + 1][1] - route[n][1])] + [route[-1]]
        return keep if len(route) > 1 else route

    def _shortcut(self, pts: list[tuple[float, float]], r: float) -> list[tuple[float, float]]:
        """Greedy line-of-sight smoothing: from each kept point jump to the farthest visible one.

        Neighbouring points are free by construction, so the search gallops forward and
        bisects back after the first blocked jump.
        """
        out, i, n = [pts[0]], 0, len(pts)
        while i < n - 1:
            good, stride, bad = i + 1, 1, None
            while good < n - 1:
                cand = min(good + stride, n - 1)
                if self.line_free(pts[i], pts[cand], r):
                    good, stride = cand, 2 * stride
                else:
                    bad = cand
                    break
            while bad is not None and bad - good > 1:
                mid = (good + bad) // 2
                good, bad = (mid, bad) if self.line_free(pts[i], pts[mid], r) else (good, mid)
            out.append(pts[good])
            i = good
        return out

    def random_free_point(self, rng: np.random.Generator, room: int | None = None,
                          radius: float | None = None) -> tuple[float, float]:
        """A planning node drawn uniformly from the level's main connected region (optionally one room)."""
        r = self.radius if radius is None else float(radius)
        mask, labels, main = self._plan(r)
        ok = labels == main
        if room is not None:
            rm = self.level.rooms[room]
            xs, zs = self._node_xz(np.arange(mask.shape[0])[:, None], np.arange(mask.shape[1])[None, :])
            ok &= (xs >= rm.lo[0]) & (xs <= rm.hi[0]) & (zs >= rm.lo[1]) & (zs <= rm.hi[1])
        ii, jj = np.nonzero(ok)
        if len(ii) == 0:
            where = f"room {room}" if room is not None else "the level"
            raise ValueError(f"no free point for radius {r} m in {where} of scene {self.level.seed}")
        n = int(rng.integers(len(ii)))
        x, z = self._node_xz(int(ii[n]), int(jj[n]))
        return (float(x), float(z))


@lru_cache(maxsize=8)
def collision_map_for_seed(seed: int, radius: float = BODY_RADIUS) -> CollisionMap:
    """The collision map of generate_level(seed), cached: treat it as read-only."""
    return CollisionMap(generate_level(int(seed)), radius=radius)
