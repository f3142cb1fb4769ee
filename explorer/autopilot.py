"""Scripted runs: drive the window's camera from a trajectory file, frame by frame.

Unlike walking, a script must not drop frames: frame i of the run is the view from
pose i of the file. So the autopilot sends the next pose only when the bundle that
answers the previous one has been shown (each request returns a sequence number, and
bundles carry the number they answer). The trajectory's leading `observe` frames are
real observations, the rest generated, as in `mirage eval`.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engine.trajectory import Trajectory

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class Autopilot(QObject):
    finished = Signal(int)      # exit code

    def __init__(self, window, trajectory: Trajectory, max_frames: int | None = None) -> None:
        super().__init__()
        self.window = window
        self.traj = trajectory
        self.limit = min(max_frames or len(trajectory), len(trajectory))
        self.shown = 0
        self.expect: int | None = None     # the sequence number of the bundle that shows frame `shown`
        self.error: str | None = None
        self.done = False

    def on_world(self, info) -> None:
        if self.done:
            return
        if not info.has_model:
            self.fail("no model could be loaded (see the messages above)", EXIT_BAD_INPUT)
            return
        self.expect = 0     # the worker's first bundle (sequence 0) observes frames[0], the start pose

    def on_bundle(self, bundle) -> None:
        if self.done or self.expect is None or bundle.seq != self.expect:
            return          # not the frame we are waiting for (e.g. a re-shown one)
        self.shown += 1
        if self.window.controller is not None:
            self.window.controller.set_pose(bundle.pose)     # the minimap draws the scripted path
        if self.shown >= self.limit:
            self._finish(EXIT_OK)
            return
        pose = self.traj.frames[self.shown]
        worker = self.window.worker
        self.expect = worker.observe(pose) if self.shown < self.traj.observe else worker.request(pose)

    def fail(self, text: str, code: int = EXIT_FAILED) -> None:
        if not self.done:
            self.error = text
            self._finish(code)

    def _finish(self, code: int) -> None:
        self.done = True
        self.finished.emit(code)
