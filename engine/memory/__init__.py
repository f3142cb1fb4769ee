"""The bounded latent spatial memory: a fixed-capacity, voxel-merged point store of latent
cells (store.py) on a flat voxel hash (slots.py), filed by chunk for frustum culling
(chunks.py), with numba kernels for the CPU path (kernels.py). Its policy, MemoryConfig,
is saved in the model's config.json (engine/model/config.py). Import from here."""
from engine.memory.store import LatentMemory, MemoryStats

__all__ = ["LatentMemory", "MemoryStats"]
