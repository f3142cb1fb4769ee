"""The latent memory's voxel hash and slot allocator, as flat arrays and numba loops.

Every write asks which slot already holds each of a frame's voxels (up to S*S keys),
and carving and eviction free a hundred or so slots a frame once the memory is well
filled. With a Python dict of tens of thousands of int keys each of those operations is
a few cache misses plus interpreter work, so the write grew slower as the memory
filled (`mirage bench`'s scaling curve). Here the hash is an open-addressing table of
int64 keys and int32 slots (linear probing, at most half full, deletion by backward
shift so no tombstones pile up), and the free slots are a stack in an array: the same
answers as the dict and list they replace, in the same order, at a cost that does not
depend on how full the memory is.

The loops are plain Python over numpy arrays when numba is missing (slow, still right).
"""
from __future__ import annotations

import numpy as np

from engine.memory.kernels import cpu_kernel

EMPTY = -1   # voxel keys are non-negative (memory_chunks.pack_cells)


@cpu_kernel
def _home(key, mask):
    # A spatial hash of the three 21-bit coordinates in the key; each product stays below 2^48,
    # so it is the same in numba's int64 and in Python.
    return (((key & 0x1FFFFF) * 73856093) ^ (((key >> 21) & 0x1FFFFF) * 19349663)
            ^ ((key >> 42) * 83492791)) & mask


@cpu_kernel
def _find(tkeys, key, mask):
    i = _home(key, mask)
    while tkeys[i] != EMPTY and tkeys[i] != key:
        i = (i + 1) & mask
    return i


@cpu_kernel
def _lookup_first(keys, tkeys, tvals):
    """Rows of each key's first occurrence (ascending) and the slot holding that key (-1: none)."""
    n = keys.shape[0]
    order = np.argsort(keys, kind="mergesort")        # stable: a group's first row is its smallest
    first = np.zeros(n, np.bool_)
    for j in range(n):
        if j == 0 or keys[order[j]] != keys[order[j - 1]]:
            first[order[j]] = True
    rows = np.nonzero(first)[0]
    held = np.empty(rows.shape[0], np.int64)
    mask = tkeys.shape[0] - 1
    for r in range(rows.shape[0]):
        i = _find(tkeys, keys[rows[r]], mask)
        held[r] = tvals[i] if tkeys[i] != EMPTY else -1
    return rows, held


@cpu_kernel
def _take(tkeys, tvals, key_of, free, nfree, keys):
    """Pop one free slot per key (top of the stack first), file key -> slot. Returns the slots."""
    mask = tkeys.shape[0] - 1
    out = np.empty(keys.shape[0], np.int64)
    for j in range(keys.shape[0]):
        slot = free[nfree - 1 - j]
        i = _find(tkeys, keys[j], mask)
        tkeys[i] = keys[j]
        tvals[i] = slot
        key_of[slot] = keys[j]
        out[j] = slot
    return out


@cpu_kernel
def _release(tkeys, tvals, key_of, free, nfree, slots):
    """Unfile the slots' keys and push the slots on the free stack, in order. Returns nfree."""
    mask = tkeys.shape[0] - 1
    for s in slots:
        key = key_of[s]
        key_of[s] = EMPTY
        free[nfree] = s
        nfree += 1
        if key == EMPTY:
            continue
        i = _find(tkeys, key, mask)
        if tkeys[i] != key or tvals[i] != s:
            continue
        # Backward shift: pull later entries of the probe run into the hole when their home
        # slot does not lie cyclically in (hole, their position].
        j = i
        while True:
            j = (j + 1) & mask
            if tkeys[j] == EMPTY:
                break
            h = _home(tkeys[j], mask)
            if (j > i and (h <= i or h > j)) or (j < i and h <= i and h > j):
                tkeys[i] = tkeys[j]
                tvals[i] = tvals[j]
                i = j
        tkeys[i] = EMPTY
    return nfree


class VoxelSlots:
    """Voxel key -> slot for `capacity` slots, and the stack of free slots."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        size = 1 << max(4, int(2 * capacity - 1).bit_length())   # a power of two >= 2 * capacity
        self._tkeys = np.empty(size, np.int64)
        self._tvals = np.empty(size, np.int32)
        self._key_of = np.empty(capacity, np.int64)                # slot -> key, EMPTY when free
        self._free = np.empty(capacity, np.int64)
        self.reset()

    def reset(self) -> None:
        self._tkeys.fill(EMPTY)
        self._key_of.fill(EMPTY)
        self._free[:] = np.arange(self.capacity - 1, -1, -1)     # slot 0 is taken first
        self._nfree = self.capacity

    @property
    def free(self) -> int:
        return self._nfree

    def __len__(self) -> int:
        return self.capacity - self._nfree

    def lookup_first(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For keys (N,) int64 in priority order: the rows of each key's first occurrence
        (ascending) and the slot already holding that key, -1 where none does."""
        return _lookup_first(np.ascontiguousarray(keys, np.int64), self._tkeys, self._tvals)

    def take(self, keys: np.ndarray) -> np.ndarray:
        """Give each of these (distinct, not held) keys a free slot; returns the slots (N,) int64."""
        keys = np.ascontiguousarray(keys, np.int64)
        if len(keys) > self._nfree:
            raise RuntimeError(f"memory slots: {len(keys)} needed, {self._nfree} free (evict first)")
        out = _take(self._tkeys, self._tvals, self._key_of, self._free, self._nfree, keys)
        self._nfree -= len(keys)
        return out

    def release(self, slots: np.ndarray) -> None:
        """Free these held slots (distinct), newest-freed taken first by the next `take`."""
        self._nfree = _release(self._tkeys, self._tvals, self._key_of, self._free, self._nfree,
                               np.ascontiguousarray(slots, np.int64))

    def slot_of(self, key: int) -> int:
        """The slot holding this voxel key, or -1 (for tests and inspection)."""
        i = _find(self._tkeys, np.int64(key), self._tkeys.shape[0] - 1)
        return int(self._tvals[i]) if self._tkeys[i] != EMPTY else -1

    def keys(self) -> np.ndarray:
        """Every held key (unordered)."""
        return self._tkeys[self._tkeys != EMPTY].copy()
