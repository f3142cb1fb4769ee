"""The memory's voxel table and slot stack against a plain dict and list doing the same."""
from __future__ import annotations

import numpy as np
import torch

from engine.memory.chunks import pack_cells
from engine.memory.slots import VoxelSlots, _home


def _pack(q: np.ndarray) -> np.ndarray:
    return pack_cells(torch.from_numpy(q)).numpy()


def test_voxel_slots_match_dict_and_list_under_churn():
    """Thousands of random writes and frees in a small, crowded table (long probe runs that wrap
    around the end, deletions in the middle of runs): every answer equals a dict's and list's."""
    rng = np.random.default_rng(0)
    cap = 96
    vs = VoxelSlots(cap)
    slot_of: dict[int, int] = {}
    key_of: dict[int, int] = {}
    free = list(range(cap - 1, -1, -1))
    mask = vs._tkeys.shape[0] - 1
    # Coordinates from a small box, so keys repeat and collide often.
    pool = _pack(rng.integers(-4, 4, size=(400, 3)))
    homes = np.array([_home(int(k), mask) for k in pool])
    assert len(np.unique(homes)) < len(pool)            # collisions really happen
    for _ in range(3000):
        keys = rng.choice(pool, size=int(rng.integers(0, 24)))
        rows, held = vs.lookup_first(keys)
        want_rows = sorted({int(k): i for i, k in reversed(list(enumerate(keys.tolist())))}.values())
        assert rows.tolist() == want_rows
        assert held.tolist() == [slot_of.get(int(keys[r]), -1) for r in rows]
        new = [int(keys[r]) for r, h in zip(rows, held) if h < 0][:len(free)]
        got = vs.take(np.array(new, dtype=np.int64)).tolist()
        want = [free.pop() for _ in new]
        assert got == want
        for k, s in zip(new, want):
            slot_of[k], key_of[s] = s, k
        if key_of and rng.random() < 0.7:
            held_slots = list(key_of)
            gone = rng.choice(held_slots, size=int(rng.integers(1, len(held_slots) + 1)), replace=False).tolist()
            vs.release(np.array(gone, dtype=np.int64))
            for s in gone:
                del slot_of[key_of.pop(s)]
                free.append(s)
        assert len(vs) == len(key_of) and vs.free == len(free)
        assert sorted(vs.keys().tolist()) == sorted(slot_of)
        assert all(vs.slot_of(k) == s for k, s in slot_of.items())


def test_voxel_slots_reset_and_full():
    vs = VoxelSlots(4)
    keys = _pack(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]))
    assert vs.take(keys).tolist() == [0, 1, 2, 3]
    assert vs.free == 0
    try:
        vs.take(_pack(np.array([[5, 5, 5]])))
    except RuntimeError as e:
        assert "1 needed, 0 free" in str(e)
    else:
        raise AssertionError("taking a slot from a full table must fail")
    vs.reset()
    assert vs.free == 4 and len(vs.keys()) == 0 and vs.slot_of(int(keys[0])) == -1


def test_voxel_slots_probe_runs_that_wrap_around_the_table_end():
    """Keys whose home is one of the table's last entries spill over to its start; freeing
    any of them must leave every other one findable (backward shift across the wrap)."""
    vs = VoxelSlots(16)
    mask = vs._tkeys.shape[0] - 1
    coords = np.stack(np.meshgrid(*[np.arange(-20, 20)] * 3, indexing="ij"), -1).reshape(-1, 3)
    keys = _pack(coords)
    homes = np.array([_home(int(k), mask) for k in keys])
    tail = keys[homes >= mask - 1][:6]                 # six keys homed in the last two entries
    head = keys[homes == 0][:2]                        # two homed at the first
    assert len(tail) == 6 and len(head) == 2
    rng = np.random.default_rng(1)
    for trial in range(40):
        vs.reset()
        order = rng.permutation(np.concatenate([tail, head]))
        slots = vs.take(order)
        assert (vs._tkeys[:4] != -1).sum() >= 4        # the run really wrapped to the start
        gone = rng.choice(len(order), size=int(rng.integers(1, 5)), replace=False)
        vs.release(slots[gone])
        for i, k in enumerate(order.tolist()):
            assert vs.slot_of(k) == (-1 if i in gone else int(slots[i])), f"trial {trial}: key {i}"
