"""The side panel of the main window: upscale settings, the left-hand comparison, export options, images.

The panel only composes widgets and forwards what the user picked as signals; the main window decides
what to render. Model choices come from :func:`mlrn_core.registry.list_models` plus model files the
user opened this session, each as a :class:`ModelChoice`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.render import INTERACTIVE_CPU_TILE, TILE_CHOICES
from mlrn_core import auto, model_summary, paths
from mlrn_core.registry import ModelEntry
from mlrn_core.tiling import QUALITIES, device_label, quality_label, quality_note

OPEN_MODEL = "__open__"
NO_MODEL = "__none__"


@dataclass(frozen=True)
class ModelChoice:
    """A model the user can pick: ``spec`` is what is remembered (registry name, file path or "auto")."""

    spec: str
    path: Path  # for Auto: the built-in models folder (the model is picked per image)
    scale: int
    label: str
    kind: str  # "built-in", "user", "file" or "auto"
    tooltip: str = ""

    @classmethod
    def auto(cls, scale: int) -> ModelChoice:
        """Model "Auto": the built-in photo model for camera files, the paper model for lossless ones."""
        tip = f"{auto.describe(scale)}\nThe caption over the result names the model that ran and why."
        return cls(auto.AUTO, paths.builtin_models_dir(), scale, "Auto (by file type)", "auto", tip)

    @classmethod
    def from_entry(cls, entry: ModelEntry) -> ModelChoice:
        what = "built-in" if entry.kind == "built-in" else "your model"
        tip = [f"{entry.name}: {what}, x{entry.scale}", str(entry.path)]
        q = model_summary.quality(entry.info)
        if q is not None:
            tip.append(q.long)
        card = entry.card.strip().splitlines()
        if card:
            tip.append("")
            tip.extend(card[:8])
        return cls(entry.name, entry.path, entry.scale, f"{entry.name} ({what})", entry.kind, "\n".join(tip))

    @classmethod
    def from_file(cls, path: Path, scale: int) -> ModelChoice:
        return cls(str(path), path, scale, f"{path.stem} (file)", "file", str(path))


def device_choices() -> list[tuple[str, str]]:
    """(value, label) pairs: auto first, then each device this machine has."""
    cpu = device_label(torch.device("cpu"))
    best = "cpu"
    choices = []
    if torch.cuda.is_available():
        best = device_label(torch.device("cuda"))
        choices.append(("cuda", best))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        if best == "cpu":
            best = device_label(torch.device("mps"))
        choices.append(("mps", device_label(torch.device("mps"))))
    best = cpu if best == "cpu" else best
    return [("auto", f"Auto: {best}"), *choices, ("cpu", cpu)]


AUTO_PRECISION_LABEL = "Auto (fastest measured)"


def precision_choices() -> list[tuple[str, str]]:
    """(value, label) pairs for the precision combo: the inference paths this machine can run (issue 31).

    "Auto" takes the fastest path measured for the model on this machine (mlrn_core.backends); once a render
    has run, its label says which and how much faster than PyTorch fp32 (:meth:`ControlsPanel.set_auto_path`)."""
    from mlrn_core import openvino_backend

    gpu = torch.cuda.is_available() or (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    )
    choices = [("auto", AUTO_PRECISION_LABEL), ("fp32", "PyTorch fp32 (exact, slower)"), ("bf16", "PyTorch bf16")]
    if gpu:
        choices.append(("fp16", "PyTorch fp16 (GPU)"))
    if openvino_backend.available():
        choices.append(("openvino", "OpenVINO CPU fp32"))
        choices.append(("openvino-int8", "OpenVINO CPU int8 (built-in models)"))
        if "GPU" in openvino_backend.devices():
            choices.append(("openvino-gpu", "OpenVINO Intel GPU"))
    return choices


def _combo() -> QComboBox:
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(12)
    combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return combo


class ControlsPanel(QWidget):
    """Upscale, Compare and Export groups plus the list of open images."""

    scale_changed = Signal(int)
    model_changed = Signal(object)  # ModelChoice | None
    open_model_requested = Signal()
    device_changed = Signal(str)
    tile_changed = Signal(int)
    precision_changed = Signal(str)
    quality_changed = Signal(str)  # "normal" or "best"
    left_changed = Signal(str)  # "bicubic", "nearest" or a model spec
    export_changed = Signal()
    save_requested = Signal()
    image_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._updating = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(10)

        upscale = QGroupBox("Upscale")
        form = QFormLayout(upscale)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.scale_combo = _combo()
        for s in (2, 3, 4):
            self.scale_combo.addItem(f"×{s}", s)
        self.model_combo = _combo()
        self.device_combo = _combo()
        for value, label in device_choices():
            self.device_combo.addItem(label, value)
        self.tile_combo = _combo()
        self.tile_combo.addItem(f"Auto ({INTERACTIVE_CPU_TILE} px on CPU)", 0)
        for t in TILE_CHOICES:
            self.tile_combo.addItem(f"{t} px", t)
        self.tile_combo.setToolTip(
            "Size of the pieces the image is upscaled in (input pixels). Small tiles show the visible part "
            "sooner; large ones finish the whole image a little faster and use more memory."
        )
        form.addRow("Scale", self.scale_combo)
        form.addRow("Model", self.model_combo)
        self.precision_combo = _combo()
        for value, label in precision_choices():
            self.precision_combo.addItem(label, value)
        self._precision_tip = (
            "How the network runs: backend and number precision. Auto times a few tiles of each path this "
            "machine has on first use of a model (PyTorch fp32/bf16, OpenVINO fp32/int8, GPUs) and keeps the "
            "fastest; every path offered keeps Set14 PSNR within 0.05 dB of fp32. PyTorch fp32 is the exact "
            "reference. The status bar says which path ran."
        )
        self.precision_combo.setToolTip(self._precision_tip)
        self.quality_combo = _combo()
        for value in QUALITIES:
            self.quality_combo.addItem(quality_label(value, 2), value)
        self._label_qualities(2)
        form.addRow("Quality", self.quality_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow("Tile size", self.tile_combo)
        layout.addWidget(upscale)

        compare = QGroupBox("Compare")
        cform = QFormLayout(compare)
        self.left_combo = _combo()
        self.left_combo.setToolTip("What the left-hand view (A) shows next to the MLRN result (B)")
        cform.addRow("Left (A)", self.left_combo)
        layout.addWidget(compare)

        export = QGroupBox("Export")
        eform = QFormLayout(export)
        self.format_combo = _combo()
        for value, label in (
            ("same", "Same as source"),
            ("png", "PNG"),
            ("jpg", "JPEG"),
            ("tiff", "TIFF"),
            ("webp", "WebP"),
            ("heic", "HEIC"),
            ("avif", "AVIF"),
        ):
            self.format_combo.addItem(label, value)
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(1, 100)
        self.quality_spin.setToolTip("JPEG, WebP, HEIC and AVIF quality (1-100)")
        self.keep16_check = QCheckBox("Keep 16 bits per channel")
        self.keep16_check.setToolTip("For 16-bit sources saved as PNG or TIFF")
        self.save_button = QPushButton("Save result…")
        self.save_button.setToolTip("Save the MLRN result (Ctrl+S); EXIF, XMP, IPTC, ICC profile and DPI are kept")
        eform.addRow("Format", self.format_combo)
        eform.addRow("File quality", self.quality_spin)
        eform.addRow("", self.keep16_check)
        eform.addRow(self.save_button)
        layout.addWidget(export)

        self.images_group = images = QGroupBox("Images")
        ilayout = QVBoxLayout(images)
        self.image_list = QListWidget()
        self.image_list.setIconSize(QSize(48, 48))
        self.image_list.setUniformItemSizes(True)
        self.image_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.image_list.setMinimumHeight(120)
        self.images_hint = QLabel("Page Up / Page Down step through the images.")
        self.images_hint.setWordWrap(True)
        self.images_hint.setEnabled(False)
        ilayout.addWidget(self.image_list)
        ilayout.addWidget(self.images_hint)
        layout.addWidget(images, 1)
        images.hide()  # shown once something is open
        layout.addStretch(0)

        self.scale_combo.currentIndexChanged.connect(self._on_scale_combo_changed)
        self.model_combo.activated.connect(self._on_model_combo_activated)
        self.device_combo.currentIndexChanged.connect(self._on_device_combo_changed)
        self.tile_combo.currentIndexChanged.connect(self._on_tile_combo_changed)
        self.precision_combo.currentIndexChanged.connect(self._on_precision_combo_changed)
        self.quality_combo.currentIndexChanged.connect(self._on_quality_combo_changed)
        self.left_combo.currentIndexChanged.connect(self._on_left_combo_changed)
        self.format_combo.currentIndexChanged.connect(self._on_export_widget_changed)
        self.quality_spin.valueChanged.connect(self._on_export_widget_changed)
        self.keep16_check.toggled.connect(self._on_export_widget_changed)
        self.save_button.clicked.connect(self.save_requested)
        self.image_list.currentRowChanged.connect(self._on_image_list_row_changed)
        self._model_index = -1

    # --- values ---------------------------------------------------------------------------------

    @property
    def scale(self) -> int:
        return int(self.scale_combo.currentData())

    @property
    def device(self) -> str:
        return str(self.device_combo.currentData())

    @property
    def tile(self) -> int:
        return int(self.tile_combo.currentData())

    @property
    def precision(self) -> str:
        return str(self.precision_combo.currentData())

    def set_auto_path(self, text: str | None) -> None:
        """Say on the Auto item what Auto chose, e.g. "Auto: OpenVINO CPU int8, 2.6x" (None: not measured yet)."""
        combo = self.precision_combo
        index = combo.findData("auto")
        if index < 0:
            return
        label = f"Auto: {text}" if text else AUTO_PRECISION_LABEL
        combo.setItemText(index, label)
        combo.setItemData(
            index,
            f"{label} over PyTorch fp32, measured on this machine" if text else label,
            Qt.ItemDataRole.ToolTipRole,
        )
        combo.setToolTip(self._precision_tip + (f"\n\n{label}" if text else ""))
        # the list opens wide enough for every path's whole name, however narrow the panel keeps the box
        view = combo.view()
        view.setMinimumWidth(max(view.sizeHintForColumn(0) + 24, combo.width()))

    def set_precision(self, precision: str) -> None:
        """Select ``precision`` without emitting precision_changed (Auto when it is not offered here)."""
        self._select_quietly(self.precision_combo, precision, "auto")

    def _select_quietly(self, combo: QComboBox, value: object, fallback: object) -> None:
        """Select ``value`` (else ``fallback``) in ``combo`` without emitting the panel's change signals."""
        self._updating = True
        try:
            if not self._select_data(combo, value):
                self._select_data(combo, fallback)
        finally:
            self._updating = False

    @property
    def quality(self) -> str:
        return str(self.quality_combo.currentData())

    def set_quality(self, quality: str) -> None:
        """Select ``quality`` ("normal" or "best") without emitting quality_changed."""
        self._select_quietly(self.quality_combo, quality, "normal")

    def _label_qualities(self, scale: int) -> None:
        """The quality combo's words for ``scale``: Best names its measured gain at that scale."""
        for i in range(self.quality_combo.count()):
            self.quality_combo.setItemText(i, quality_label(str(self.quality_combo.itemData(i)), scale))
        note = quality_note(scale)
        self.quality_combo.setToolTip(
            "Normal runs the network once per tile. Best: " + note.split(": ", 1)[1] + " (measured with "
            "python benchmarks/self_ensemble.py; docs/quality.md)."
        )

    @property
    def model(self) -> ModelChoice | None:
        data = self.model_combo.currentData()
        return data if isinstance(data, ModelChoice) else None

    @property
    def left(self) -> str:
        data = self.left_combo.currentData()
        return data.spec if isinstance(data, ModelChoice) else str(data or "bicubic")

    def left_choice(self) -> ModelChoice | None:
        data = self.left_combo.currentData()
        return data if isinstance(data, ModelChoice) else None

    @property
    def export_format(self) -> str:
        return str(self.format_combo.currentData())

    def _select_data(self, combo: QComboBox, value: object) -> bool:
        for i in range(combo.count()):
            data = combo.itemData(i)
            if data == value or (isinstance(data, ModelChoice) and data.spec == value):
                combo.setCurrentIndex(i)
                return True
        return False

    def set_values(self, scale: int, device: str, tile: int, fmt: str, quality: int, keep16: bool) -> None:
        self._updating = True
        try:
            self._select_data(self.scale_combo, scale)
            if not self._select_data(self.device_combo, device):
                self._select_data(self.device_combo, "auto")
            if not self._select_data(self.tile_combo, tile):
                self.tile_combo.addItem(f"{tile} px", tile)
                self._select_data(self.tile_combo, tile)
            self._select_data(self.format_combo, fmt)
            self.quality_spin.setValue(quality)
            self.keep16_check.setChecked(keep16)
            self._label_qualities(self.scale)
        finally:
            self._updating = False

    def set_scale(self, scale: int) -> None:
        """Select ``scale``; emits scale_changed when it changed."""
        self._select_data(self.scale_combo, scale)

    def set_tile(self, tile: int) -> None:
        if not self._select_data(self.tile_combo, tile):
            self.tile_combo.addItem(f"{tile} px", tile)
            self._select_data(self.tile_combo, tile)

    def set_models(self, choices: list[ModelChoice], selected: str | None, left: str) -> None:
        """Fill the model and left-hand combos (no signals); ``selected``/``left`` are specs to keep."""
        self._updating = True
        try:
            self.model_combo.clear()
            for c in choices:
                self.model_combo.addItem(c.label, c)
                self.model_combo.setItemData(self.model_combo.count() - 1, c.tooltip, Qt.ItemDataRole.ToolTipRole)
            if not choices:
                self.model_combo.addItem(f"No model for ×{self.scale}", NO_MODEL)
            self.model_combo.insertSeparator(self.model_combo.count())
            self.model_combo.addItem("Open model file…", OPEN_MODEL)
            if selected is None or not self._select_data(self.model_combo, selected):
                self.model_combo.setCurrentIndex(0)
            self._model_index = self.model_combo.currentIndex()

            self.left_combo.clear()
            self.left_combo.addItem("Bicubic", "bicubic")
            self.left_combo.addItem("Original pixels (nearest)", "nearest")
            for c in choices:
                if c.kind == "auto":  # the left view compares against one model (or bicubic)
                    continue
                self.left_combo.addItem(c.label, c)
                self.left_combo.setItemData(self.left_combo.count() - 1, c.tooltip, Qt.ItemDataRole.ToolTipRole)
            if not self._select_data(self.left_combo, left):
                self.left_combo.setCurrentIndex(0)
        finally:
            self._updating = False

    def set_export_state(self, quality_enabled: bool, keep16_enabled: bool) -> None:
        self.quality_spin.setEnabled(quality_enabled)
        self.keep16_check.setEnabled(keep16_enabled)

    # --- images ---------------------------------------------------------------------------------

    def set_images(self, paths: list[Path], current: int) -> None:
        self.images_group.setVisible(bool(paths))
        self._updating = True
        try:
            self.image_list.clear()
            for p in paths:
                item = QListWidgetItem(p.name)
                item.setToolTip(str(p))
                self.image_list.addItem(item)
            self.image_list.setCurrentRow(current)
        finally:
            self._updating = False

    def set_current_image(self, row: int) -> None:
        self._updating = True
        try:
            self.image_list.setCurrentRow(row)
        finally:
            self._updating = False

    def set_image_icon(self, row: int, icon: QIcon, tooltip: str | None = None) -> None:
        item = self.image_list.item(row)
        if item is not None:
            item.setIcon(icon)
            if tooltip:
                item.setToolTip(tooltip)

    # --- slots ----------------------------------------------------------------------------------

    def _on_scale_combo_changed(self, _index: int) -> None:
        self._label_qualities(self.scale)
        if not self._updating:
            self.scale_changed.emit(self.scale)

    def _on_model_combo_activated(self, index: int) -> None:
        data = self.model_combo.itemData(index)
        if data == OPEN_MODEL:
            # go back to what was selected; the window adds and selects the file once it is valid
            self.model_combo.setCurrentIndex(self._model_index)
            self.open_model_requested.emit()
            return
        if index != self._model_index:
            self._model_index = index
            self.model_changed.emit(self.model)

    def _on_device_combo_changed(self, _index: int) -> None:
        if not self._updating:
            self.device_changed.emit(self.device)

    def _on_tile_combo_changed(self, _index: int) -> None:
        if not self._updating:
            self.tile_changed.emit(self.tile)

    def _on_precision_combo_changed(self, _index: int) -> None:
        if not self._updating:
            self.precision_changed.emit(self.precision)

    def _on_quality_combo_changed(self, _index: int) -> None:
        if not self._updating:
            self.quality_changed.emit(self.quality)

    def _on_left_combo_changed(self, _index: int) -> None:
        if not self._updating:
            self.left_changed.emit(self.left)

    def _on_export_widget_changed(self, *_args) -> None:
        if not self._updating:
            self.export_changed.emit()

    def _on_image_list_row_changed(self, row: int) -> None:
        if not self._updating and row >= 0:
            self.image_selected.emit(row)

    def select_model(self, spec: str) -> bool:
        """Select a model by spec as if the user picked it (emits model_changed)."""
        for i in range(self.model_combo.count()):
            data = self.model_combo.itemData(i)
            if isinstance(data, ModelChoice) and data.spec == spec:
                self.model_combo.setCurrentIndex(i)
                self._on_model_combo_activated(i)
                return True
        return False

    def select_left(self, spec: str) -> bool:
        return self._select_data(self.left_combo, spec)
