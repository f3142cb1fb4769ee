"""Resumable checkpoints in safetensors (never pickle) and loss logs as CSV + PNG.

A checkpoint directory holds `<name>.safetensors` per module, `optim.safetensors`
with the optimizer's tensors, and `state.json` with the step and the optimizer's
scalar state, all written atomically so an interrupted save never leaves a
half-written file that a resume would trust.
"""
from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from engine.files import atomic_path, atomic_text

RUN_ARGS = "args.json"


def save_run_args(run_dir: str | Path, args: Any, step: int) -> None:
    """Record one start of a training run in RUN_DIR/args.json: its arguments (a dataclass) and the step
    it starts from. A resumed run appends, so the file lists every start, settings changed on a
    resume included: the run's own record of how it was trained, never the model's config."""
    path = Path(run_dir) / RUN_ARGS
    starts = json.loads(path.read_text()) if path.is_file() else []
    starts.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": int(step), "args": asdict(args)})
    atomic_text(path, json.dumps(starts, indent=1) + "\n")


def run_args(run_dir: str | Path) -> dict:
    """The arguments of a run's latest start (RUN_DIR/args.json)."""
    return json.loads((Path(run_dir) / RUN_ARGS).read_text())[-1]["args"]


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
                  metadata={k: str(v) for k, v in (metadata or {}).items()})


def _optim_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v
            else:
                scalars["state"].setdefault(str(pid), {})[k] = v
    return tensors, scalars


def save_checkpoint(ckpt_dir: str | Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                    step: int, extra: dict | None = None) -> None:
    d = Path(ckpt_dir)
    d.mkdir(parents=True, exist_ok=True)
    for name, m in modules.items():
        save_tensors(d / f"{name}.safetensors", unwrap(m).state_dict())
    tensors, scalars = _optim_flat(opt)
    save_tensors(d / "optim.safetensors", tensors)
    atomic_text(d / "state.json", json.dumps({"step": step, "optim": scalars, **(extra or {})}))


def load_checkpoint(ckpt_dir: str | Path, modules: dict[str, torch.nn.Module],
                    opt: torch.optim.Optimizer | None) -> dict:
    """Restore modules (and optimizer) in place; returns state.json's contents."""
    d = Path(ckpt_dir)
    state = json.loads((d / "state.json").read_text())
    for name, m in modules.items():
        unwrap(m).load_state_dict(load_file(str(d / f"{name}.safetensors")))
    if opt is not None and (d / "optim.safetensors").exists():
        opt.load_state_dict(_optim_unflat(load_file(str(d / "optim.safetensors")), state["optim"]))
    return state


def _optim_unflat(flat: dict[str, torch.Tensor], scalars: dict) -> dict:
    """The inverse of _optim_flat: an optimizer state dict from its tensors and scalars."""
    osd = {"param_groups": scalars["param_groups"], "state": {}}
    for key, v in flat.items():
        pid, k = key.split(".", 1)
        osd["state"].setdefault(int(pid), {})[k] = v
    for pid, st in scalars["state"].items():
        osd["state"].setdefault(int(pid), {}).update(st)
    return osd


def save_optimizer(path: Path, opt: torch.optim.Optimizer) -> None:
    """A second optimizer beside a checkpoint's main one: PATH (tensors) and PATH.json (the rest)."""
    tensors, scalars = _optim_flat(opt)
    save_tensors(path, tensors)
    atomic_text(path.with_name(path.name + ".json"), json.dumps(scalars))


def load_optimizer(path: Path, opt: torch.optim.Optimizer) -> bool:
    """Restore what save_optimizer wrote; False (optimizer untouched) when it is not there."""
    meta = path.with_name(path.name + ".json")
    if not (path.exists() and meta.exists()):
        return False
    opt.load_state_dict(_optim_unflat(load_file(str(path)), json.loads(meta.read_text())))
    return True


def unwrap(m: torch.nn.Module) -> torch.nn.Module:
    return m.module if hasattr(m, "module") else m


class LossLog:
    """Appends rows to a CSV as training goes and renders a PNG plot of the curves."""

    def __init__(self, path: str | Path, fields: list[str]) -> None:
        self.path = Path(path)
        self.fields = fields
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def append(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])

    def plot(self, png: str | Path | None = None) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = list(csv.DictReader(self.path.open()))
        png = Path(png) if png else self.path.with_suffix(".png")
        keys = [k for k in self.fields if k != "step"]
        fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3), squeeze=False)
        steps = [float(r["step"]) for r in rows]
        for ax, k in zip(axes[0], keys):
            vals = [float(r[k]) if r[k] not in ("", None) else float("nan") for r in rows]
            ax.plot(steps, vals)
            ax.set_title(k)
            ax.set_xlabel("step")
            if k.startswith("loss"):
                ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(png, dpi=80)
        plt.close(fig)
        return png
