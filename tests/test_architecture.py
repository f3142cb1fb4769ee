"""The rules of the house as import contracts (pyproject.toml, [tool.importlinter]): engine and
export never import Qt or the explorer, arrows run explorer -> export -> engine, and no two
sibling modules or packages import each other in a circle. Checked with import-linter."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import-linter's own entry point, run by this interpreter (no PATH lookup of the lint-imports script).
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"]


def test_import_contracts_hold():
    run = subprocess.run(LINT, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_a_cycle_would_be_caught(tmp_path):
    """The contract is not vacuous: a copy of the tree with one import added back (memory's store
    importing the session, which imports memory) breaks the cycle contract."""
    for name in ("engine", "export", "explorer"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    store = tmp_path / "engine" / "memory" / "store.py"
    store.write_text(store.read_text() + "\n\ndef _cycle():\n    from engine import session  # noqa: F401\n")
    run = subprocess.run(LINT, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert run.returncode != 0 and "no import cycles BROKEN" in run.stdout, run.stdout[-3000:]
