"""`mirage eval`: run.py walks trajectories with memory on and off and measures them;
baselines.py makes the flat and layout frames a model must beat. Import from here."""
from engine.eval.run import (
    BASELINES,
    METRICS,
    MODES,
    contact_sheet,
    eval_trajectories_for,
    render_trajectory,
    run_eval,
    run_one,
    summarise,
)

__all__ = ["BASELINES", "METRICS", "MODES", "contact_sheet", "eval_trajectories_for", "render_trajectory",
           "run_eval", "run_one", "summarise"]
