"""Which torch device a command runs on: `auto`, `cpu`, `cuda` or `cuda:N`, checked before any work.

A device this machine does not have is refused with a message that names it and says why
(torch built without CUDA, or no GPU, or no GPU of that number), instead of torch's
AssertionError from deep inside the first `.to(device)`. `auto` never fails: CUDA where it
is, the CPU elsewhere.
"""
from __future__ import annotations

import torch

NAMES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch.device for `name`, or ValueError naming the device and why it cannot be used."""
    if isinstance(name, torch.device):
        name = str(name)
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text != "cuda" and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ValueError(f"--device {name!r}: expected {NAMES}")
    if not torch.backends.cuda.is_built():
        raise ValueError(f"--device {name!r}: this torch ({torch.__version__}) is built without CUDA; "
                         f"use --device cpu (or auto)")
    count = torch.cuda.device_count()
    if count == 0:
        raise ValueError(f"--device {name!r}: no CUDA GPU is visible on this machine; use --device cpu (or auto)")
    index = int(text[5:]) if ":" in text else 0
    if index >= count:
        raise ValueError(f"--device {name!r}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}")
    return torch.device("cuda", index)
