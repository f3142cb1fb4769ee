"""Explorer settings: what persists between runs (QSettings), which backends exist, the panel.

Values of 0 / "" mean "the model's own" (sampling steps and temperature, memory capacity, field of
view) or "the shipped model" (model directory), so a setting saved with one model does
not silently force odd values onto the next. Command-line flags override settings for
one run and are not saved; only the panel's Apply saves.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.world.geometry import MAX_SCENE_SEED

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
ORGANIZATION, APPLICATION = "Mirage", "Mirage Explorer"


@dataclass
class Settings:
    model_dir: str = ""          # "" -> the shipped model (assets/models/default)
    backend: str = "auto"
    steps: int = 0               # sampling steps; 0 -> the model's default
    temperature: float = 0.0     # scale of the sampler's starting noise; 0 -> the model's default
    capacity: int = 0            # memory points; 0 -> the model's default
    world_seed: int = 0          # scene seed of the level to walk
    fov_deg: float = 0.0         # 0 -> the model's training field of view
    out_dir: str = ""            # recordings and screenshots; "" -> ./recordings

    def recordings_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path.cwd() / "recordings"


def open_store(path: str | Path | None = None) -> QSettings:
    """The user's settings, or an INI file (tests and portable setups pass a path)."""
    if path:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


def load_settings(store: QSettings) -> Settings:
    """Read settings, keeping defaults for anything missing or unreadable (a hand-edited file)."""
    s = Settings()
    for f in fields(Settings):
        raw = store.value(f"explorer/{f.name}")
        if raw is None:
            continue
        try:
            setattr(s, f.name, type(getattr(s, f.name))(raw))
        except (TypeError, ValueError):
            pass
    if s.backend not in BACKENDS:
        s.backend = "auto"
    if not 0 <= s.world_seed <= MAX_SCENE_SEED:   # a hand-edited file: the seed box could not hold it
        s.world_seed = Settings.world_seed
    return s


def save_settings(store: QSettings, s: Settings) -> None:
    for k, v in asdict(s).items():
        store.setValue(f"explorer/{k}", v)
    store.sync()


# ---- backends ---------------------------------------------------------------------------

def backend_status() -> dict[str, tuple[bool, str]]:
    """For each backend: can it run here, and why not (engine.backends.backend_availability: imports only)."""
    from engine.backends import backend_availability

    return backend_availability(torch_device())


def resolve_backend(requested: str) -> tuple[str, str | None]:
    """The backend that will run, and a message to show when it is not the one asked for.

    Decided from what is installed; building it can still fail (a broken export, an engine
    build error), and engine.backends.select_backend then falls back to torch and says so.
    """
    from engine.backends import plan_backend

    return plan_backend(requested, torch_device())


def torch_device() -> str:
    """CUDA where torch sees a GPU, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# ---- panel ------------------------------------------------------------------------------

class SettingsPanel(QWidget):
    """The settings form. Apply emits the new Settings; the window saves and applies them."""

    applied = Signal(object)   # Settings

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._base = settings
        form = QFormLayout()
        self.model_dir = QLineEdit(settings.model_dir)
        self.model_dir.setPlaceholderText("shipped model (assets/models/default)")
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.model_dir)
        row.addWidget(browse)
        form.addRow("Model", row)

        self.backend = QComboBox()
        for name, (ok, why) in backend_status().items():
            self.backend.addItem(name if ok else f"{name} (unavailable)", name)
            item = self.backend.model().item(self.backend.count() - 1)
            item.setToolTip(why)
            item.setEnabled(ok)  # listed so a person sees it exists, but cannot be picked
        self.backend.setCurrentIndex(max(0, self.backend.findData(settings.backend)))
        form.addRow("Backend", self.backend)

        self.steps = _spin(0, 100, settings.steps, "model default")
        form.addRow("Sampling steps", self.steps)
        # More than 1 draws more texture where the model is unsure, at some cost in revisit consistency.
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 3.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setDecimals(2)
        self.temperature.setSpecialValueText("model default")
        self.temperature.setValue(float(settings.temperature))
        self.temperature.setToolTip("scale of the sampler's starting noise (docs/MODEL.md, Sampling temperature)")
        form.addRow("Sampling temperature", self.temperature)
        self.capacity = _spin(0, 10_000_000, settings.capacity, "model default", step=4096)
        form.addRow("Memory capacity", self.capacity)
        self.world_seed = _spin(0, MAX_SCENE_SEED, settings.world_seed)
        form.addRow("World seed", self.world_seed)
        self.fov = _spin(0, 150, int(round(settings.fov_deg)), "model's")
        self.fov.setSuffix("°")
        form.addRow("Field of view", self.fov)
        self.out_dir = QLineEdit(settings.out_dir)
        self.out_dir.setPlaceholderText("./recordings")
        form.addRow("Recordings", self.out_dir)

        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b35900;")
        apply = QPushButton("Apply")
        apply.clicked.connect(self._apply)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(apply)
        layout.addWidget(self.message)
        layout.addStretch(1)

    def current(self) -> Settings:
        return replace(self._base, model_dir=self.model_dir.text().strip(), backend=self.backend.currentData(),
                       steps=self.steps.value(), temperature=self.temperature.value(), capacity=self.capacity.value(), world_seed=self.world_seed.value(),
                       fov_deg=float(self.fov.value()), out_dir=self.out_dir.text().strip())

    def show_settings(self, s: Settings) -> None:
        """Reflect settings changed elsewhere (N for a new world, command-line flags)."""
        self._base = s
        self.model_dir.setText(s.model_dir)
        self.backend.setCurrentIndex(max(0, self.backend.findData(s.backend)))
        self.steps.setValue(s.steps)
        self.temperature.setValue(float(s.temperature))
        self.capacity.setValue(s.capacity)
        self.world_seed.setValue(s.world_seed)
        self.fov.setValue(int(round(s.fov_deg)))
        self.out_dir.setText(s.out_dir)

    def show_message(self, text: str) -> None:
        self.message.setText(text)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Model directory", self.model_dir.text() or str(Path.cwd()))
        if d:
            self.model_dir.setText(d)

    def _apply(self) -> None:
        self._base = self.current()
        self.applied.emit(self._base)


def _spin(lo: int, hi: int, value: int, zero_text: str = "", step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(int(value))
    if zero_text:
        box.setSpecialValueText(zero_text)   # shown for the minimum (0): "use the model's own"
    return box
