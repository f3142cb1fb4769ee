"""Camera paths: the `mirage-trajectory/1` file format (format.py) and the builders of the
four trajectory kinds eval and training walk (kinds.py). Import from here."""
from engine.trajectory.format import (
                                      FORMAT,
                                      KINDS,
                                      MIN_CLEARANCE,
                                      Trajectory,
                                      TrajectoryError,
                                      read_trajectory,
                                      trajectory_from_dict,
                                      trajectory_to_dict,
                                      write_trajectory,
)
from engine.trajectory.kinds import make_trajectory

__all__ = ["FORMAT", "KINDS", "MIN_CLEARANCE", "Trajectory", "TrajectoryError", "make_trajectory", "read_trajectory",
           "trajectory_from_dict", "trajectory_to_dict", "write_trajectory"]
