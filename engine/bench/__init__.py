"""`mirage bench`: the whole step per backend (step.py, backend.py), memory read/write cost and
bytes against an RGB point-cloud memory (memory.py, pointcloud.py), and the renderer
(render.py). Speed targets are checked here, never by timed unit tests."""
