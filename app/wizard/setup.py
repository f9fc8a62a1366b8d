"""The wizard's Setup page: scale, base model, name, LR degradation, device and budget, with a speed
estimate from a few real training steps."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWizardPage,
)

from app.controls import device_choices
from app.wizard.current import CurrentJob
from app.wizard.jobs import (
    SpeedJob,
)
from app.wizard.state import FT_LR, SCRATCH_LR, WizardState
from app.wizard.widgets import (
    ERROR_STYLE,
    WARN_STYLE,
    form_grid,
    wrap_label,
)
from app.worker import JobRunner
from mlrn_core import auto, model_summary, registry
from mlrn_core.finetune import passes_over_data, rough_steps_per_s
from mlrn_core.model import MLRN, count_parameters
from mlrn_core.terminal import fmt_duration, fmt_steps
from mlrn_core.tiling import pick_device

log = logging.getLogger(__name__)


class SetupPage(QWizardPage):
    """Scale, base model, name, LR degradation, device and budget, with a speed estimate."""

    def __init__(self, state: WizardState, runner: JobRunner, preferred_base: str | None) -> None:
        super().__init__()
        self.state = state
        self.runner = runner
        self._preferred_base = preferred_base
        self._name_edited = False
        self.speed = CurrentJob(runner, self._on_speed_done, self)
        self._measured: tuple[tuple, float, str] | None = None  # (settings key, steps/s, device label)
        self._speed_key: tuple | None = None  # the settings the running measurement is for
        self._speed_error: tuple[tuple, str] | None = None  # (settings key, why the measurement failed)
        # the speed is measured by itself, a moment after the settings stop changing (a guess is ~40x off)
        self._measure_timer = QTimer(self, singleShot=True, interval=700)
        self._measure_timer.timeout.connect(self._on_measure_timer_timeout)
        self._params_cache: dict[tuple, int] = {}
        self._scratch: bool | None = None  # the base kind the learning rate default was set for
        self.setTitle("Setup")
        self.setSubTitle("What to train, starting from which model, and for how long.")

        self.scale_combo = QComboBox()
        for s in (2, 3, 4):
            self.scale_combo.addItem(f"x{s}", s)
        self.base_combo = QComboBox()
        self.base_note = wrap_label()
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(64)
        self.name_note = wrap_label()

        self.clean_radio = QRadioButton("Sharp, lossless originals (PNG, TIFF, exported RAW)")
        self.jpeg_radio = QRadioButton("Camera JPEGs: learn to undo JPEG compression and a little noise too")
        self.inputs_note = wrap_label()
        self._inputs_chosen = False  # the user picked one: the photos no longer decide
        self._degradation_group = QButtonGroup(self)
        self._degradation_group.addButton(self.clean_radio)
        self._degradation_group.addButton(self.jpeg_radio)
        self.jpeg_min = QSpinBox()
        self.jpeg_max = QSpinBox()
        for spin in (self.jpeg_min, self.jpeg_max):
            spin.setRange(10, 100)
        self.noise_spin = QDoubleSpinBox()
        self.noise_spin.setRange(0.0, 10.0)
        self.noise_spin.setSingleStep(0.5)
        self.noise_spin.setDecimals(1)
        jpeg_row = QHBoxLayout()
        jpeg_row.addSpacing(24)
        jpeg_row.addWidget(QLabel("JPEG quality"))
        jpeg_row.addWidget(self.jpeg_min)
        jpeg_row.addWidget(QLabel("to"))
        jpeg_row.addWidget(self.jpeg_max)
        jpeg_row.addSpacing(16)
        jpeg_row.addWidget(QLabel("noise up to sigma"))
        jpeg_row.addWidget(self.noise_spin)
        jpeg_row.addStretch(1)
        degradation_box = QVBoxLayout()
        degradation_box.addWidget(self.inputs_note)
        degradation_box.addWidget(self.clean_radio)
        degradation_box.addWidget(self.jpeg_radio)
        degradation_box.addLayout(jpeg_row)

        self.device_combo = QComboBox()
        for value, label in device_choices():
            self.device_combo.addItem(label, value)

        self.minutes_radio = QRadioButton("Minutes")
        self.steps_radio = QRadioButton("Steps")
        self._budget_group = QButtonGroup(self)
        self._budget_group.addButton(self.minutes_radio)
        self._budget_group.addButton(self.steps_radio)
        self.minutes_spin = QSpinBox()
        self.minutes_spin.setRange(1, 7 * 24 * 60)
        self.minutes_spin.setSuffix(" min")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setSingleStep(100)
        self.measure_button = QPushButton("Measure")  # "Measure again" once a measurement is on screen
        self.measure_button.setToolTip(
            "The speed is measured by itself with a few real training steps on this "
            "device whenever the settings change; measure again if the computer was busy"
        )
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.minutes_radio)
        budget_row.addWidget(self.minutes_spin)
        budget_row.addSpacing(16)
        budget_row.addWidget(self.steps_radio)
        budget_row.addWidget(self.steps_spin)
        budget_row.addStretch(1)
        budget_row.addWidget(self.measure_button)
        self.estimate_label = wrap_label()

        # advanced
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(8, 256)
        self.patch_spin.setSingleStep(8)
        self.patch_spin.setSuffix(" px (LR)")
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(0.00001, 0.01)
        self.lr_spin.setSingleStep(0.0001)
        self.val_every_spin = QSpinBox()
        self.val_every_spin.setRange(0, 1_000_000)
        self.val_every_spin.setSpecialValueText("auto")
        self.val_every_spin.setSuffix(" steps")
        self.val_every_spin.setToolTip("How often the hold-out is checked and a checkpoint saved (auto: ~12 per run)")
        self.features_spin = QSpinBox()
        self.features_spin.setRange(4, 256)
        self.blocks_spin = QSpinBox()
        self.blocks_spin.setRange(1, 64)
        advanced = QGroupBox("Advanced")
        grid = QGridLayout(advanced)
        grid.addWidget(QLabel("Batch"), 0, 0)
        grid.addWidget(self.batch_spin, 0, 1)
        grid.addWidget(QLabel("Patch"), 0, 2)
        grid.addWidget(self.patch_spin, 0, 3)
        grid.addWidget(QLabel("Learning rate"), 0, 4)
        grid.addWidget(self.lr_spin, 0, 5)
        grid.addWidget(QLabel("Check hold-out every"), 1, 0)
        grid.addWidget(self.val_every_spin, 1, 1)
        grid.addWidget(QLabel("New network: features"), 1, 2)
        grid.addWidget(self.features_spin, 1, 3)
        grid.addWidget(QLabel("blocks"), 1, 4)
        grid.addWidget(self.blocks_spin, 1, 5)
        grid.setColumnStretch(6, 1)
        self.size_note = wrap_label()
        self.size_note.setStyleSheet(WARN_STYLE)

        form = form_grid(
            [
                ("Scale", self.scale_combo),
                ("Start from", self.base_combo),
                ("", self.base_note),
                ("Name of the new model", self.name_edit),
                ("", self.name_note),
                ("Low-resolution inputs", degradation_box),
                ("Device", self.device_combo),
                ("Budget", budget_row),
                ("", self.estimate_label),
            ]
        )
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(advanced)
        layout.addWidget(self.size_note)
        layout.addStretch(1)

        self._load_state()
        self.scale_combo.currentIndexChanged.connect(self._on_scale_combo_changed)
        self.base_combo.currentIndexChanged.connect(self._on_settings_changed)
        self.name_edit.textEdited.connect(self._on_name_edit_edited)
        self.name_edit.textChanged.connect(self._on_name_edit_changed)
        for radio in (self.clean_radio, self.jpeg_radio):  # clicked: the user's own choice, not the default's
            radio.clicked.connect(self._on_inputs_radio_clicked)
        self.jpeg_radio.toggled.connect(self._on_jpeg_radio_toggled)  # before the estimate: it may change the base
        self.jpeg_radio.toggled.connect(self._on_settings_changed)
        self.device_combo.currentIndexChanged.connect(self._on_device_combo_changed)
        self.minutes_radio.toggled.connect(self._on_settings_changed)
        self.measure_button.clicked.connect(self._on_measure_button_clicked)
        for spin in (
            self.jpeg_min,
            self.jpeg_max,
            self.minutes_spin,
            self.steps_spin,
            self.batch_spin,
            self.patch_spin,
            self.val_every_spin,
            self.features_spin,
            self.blocks_spin,
        ):
            spin.valueChanged.connect(self._on_settings_changed)
        for spin in (self.noise_spin, self.lr_spin):
            spin.valueChanged.connect(self._on_settings_changed)

    def _load_state(self) -> None:
        st = self.state
        self.scale_combo.setCurrentIndex(max(0, self.scale_combo.findData(st.scale)))
        device = pick_device(st.device)
        if device.type == "cpu":  # smaller steps so that a CPU run shows progress within minutes
            st.batch, st.patch = 8, 32
        self.batch_spin.setValue(st.batch)
        self.patch_spin.setValue(st.patch)
        self.val_every_spin.setValue(st.val_every)
        self.features_spin.setValue(st.features)
        self.blocks_spin.setValue(st.blocks)
        self.jpeg_min.setValue(st.jpeg_quality[0])
        self.jpeg_max.setValue(st.jpeg_quality[1])
        self.noise_spin.setValue(st.noise_sigma)
        (self.jpeg_radio if st.jpeg else self.clean_radio).setChecked(True)
        self.device_combo.setCurrentIndex(max(0, self.device_combo.findData(st.device)))
        (self.minutes_radio if st.budget_minutes else self.steps_radio).setChecked(True)
        self.minutes_spin.setValue(int(st.minutes))
        self.steps_spin.setValue(st.steps)
        self._fill_bases(self._preferred_base, follow=False)
        self._scratch = not self.base_combo.currentData()
        self.lr_spin.setValue(SCRATCH_LR if self._scratch else st.lr)

    # -- QWizardPage
    def initializePage(self) -> None:  # noqa: N802 - Qt override
        if not self._name_edited or not self.name_edit.text().strip():
            self.name_edit.setText(self.state.default_name())
        self._follow_the_photos()
        self._on_settings_changed()

    def _follow_the_photos(self) -> None:
        """The kind of inputs the photos picked call for, until the user picks one: mostly camera JPEGs (or
        HEIC, AVIF, lossy WebP, by their bytes) -> camera-JPEG inputs, which start from the photo model."""
        photos = self.state.candidates()
        if not photos:
            self.inputs_note.setText("")
            return
        lossy = sum(auto.sniff_format(p).lossy for p in photos)
        n = len(photos)
        self.inputs_note.setText(
            f"{lossy} of your {n} photos {'is a camera JPEG' if lossy == 1 else 'are camera JPEGs'} or similar "
            f"(HEIC, AVIF, lossy WebP); {n - lossy} {'is' if n - lossy == 1 else 'are'} lossless."
        )
        if not self._inputs_chosen:
            (self.jpeg_radio if 2 * lossy > n else self.clean_radio).setChecked(True)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        # initializePage runs before the page is shown, when a measurement is not started (it would time a
        # page no one sees): start it now, so the estimate is measured without touching any setting
        super().showEvent(event)
        self._schedule_measure()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return self._name_error() is None and len(self.state.candidates()) >= 2

    def validatePage(self) -> bool:  # noqa: N802 - Qt override
        self._store()
        self._measure_timer.stop()
        self.speed.stop()
        return self.isComplete()

    # -- choices
    def _fill_bases(self, keep: str | None, follow: bool = True) -> None:
        """Fill the base models of the scale, keeping ``keep``; with ``follow`` a built-in base becomes the one
        for the scale and the kind of inputs (the photo model for camera JPEGs, when installed)."""
        scale = int(self.scale_combo.currentData())
        self.base_combo.blockSignals(True)
        self.base_combo.clear()
        try:
            entries = registry.list_models(scale)
        except Exception as exc:  # noqa: BLE001 - an unreadable models folder must not break the wizard
            log.warning("cannot list models: %s", exc)
            entries = []
        builtin = registry.builtin_name(scale)
        default = auto.camera_base(scale) if self.jpeg_radio.isChecked() else builtin
        if follow and keep in self._builtin_bases():  # a built-in base follows the scale and the kind of inputs
            keep = default
        for e in entries:
            what = "built-in" if e.kind == "built-in" else "your model"
            q = model_summary.quality(e.info)
            self.base_combo.addItem(f"{e.name} ({what}{', ' + q.short if q else ''})", e.name)
        if keep and self.base_combo.findData(keep) < 0 and Path(keep).is_file():
            self.base_combo.addItem(f"{Path(keep).stem} (file)", keep)
        self.base_combo.addItem("From scratch (a new network)", "")
        index = self.base_combo.findData(keep) if keep else -1
        if index < 0:
            index = self.base_combo.findData(default)
        self.base_combo.setCurrentIndex(index if index >= 0 else self.base_combo.count() - 1)
        self.base_combo.blockSignals(False)
        has_builtin = any(e.name == builtin for e in entries)
        if self.base_combo.currentData() == auto.photo_name(scale):
            self.base_note.setText(
                f"Camera-JPEG fine-tunes start from {auto.photo_name(scale)}, the built-in model "
                "made for camera files: it keeps what that model knows and adapts it to your "
                "photos."
            )
            self.base_note.setStyleSheet("")
        elif has_builtin:
            self.base_note.setText(
                "Fine-tuning starts from an existing model: it keeps what that model knows "
                "and adapts it to your photos."
            )
            self.base_note.setStyleSheet("")
        else:
            self.base_note.setText(
                f"The built-in x{scale} weights ({builtin}) are missing from this installation, so "
                "you can start from one of your own models or from scratch. A new network needs "
                "a much longer budget than a fine-tune (an hour or more on a GPU for good "
                "results)."
            )
            self.base_note.setStyleSheet(WARN_STYLE)

    def _builtin_bases(self) -> set[str]:
        """The built-in paper and photo models of every scale (bases the page may switch by itself)."""
        return {n for s in (2, 3, 4) for n in (registry.builtin_name(s), auto.photo_name(s))}

    def _store(self) -> None:
        st = self.state
        st.scale = int(self.scale_combo.currentData())
        st.base = self.base_combo.currentData() or None
        st.name = self.name_edit.text().strip()
        st.jpeg = self.jpeg_radio.isChecked()
        lo, hi = sorted((self.jpeg_min.value(), self.jpeg_max.value()))
        st.jpeg_quality = (lo, hi)
        st.noise_sigma = float(self.noise_spin.value())
        st.device = self.device_combo.currentData()
        st.budget_minutes = self.minutes_radio.isChecked()
        st.minutes = float(self.minutes_spin.value())
        st.steps = int(self.steps_spin.value())
        st.batch = self.batch_spin.value()
        st.patch = self.patch_spin.value()
        st.lr = float(self.lr_spin.value())
        st.val_every = self.val_every_spin.value()
        st.features = self.features_spin.value()
        st.blocks = self.blocks_spin.value()
        speed = self._speed()
        st.steps_per_s = speed[0] if speed[2] else None
        st.rough_steps_per_s = speed[0]

    def _settings_key(self) -> tuple:
        return (
            self.device_combo.currentData(),
            self.base_combo.currentData(),
            self.scale_combo.currentData(),
            self.batch_spin.value(),
            self.patch_spin.value(),
            self.features_spin.value(),
            self.blocks_spin.value(),
            self.jpeg_radio.isChecked(),
        )

    def _parameters(self) -> int:
        base = self.base_combo.currentData()
        key = (base, self.scale_combo.currentData(), self.features_spin.value(), self.blocks_spin.value())
        if key not in self._params_cache:
            try:
                if base:
                    _name, path = registry.resolve_model_path(base, None)
                    mf = registry.read_model_file(path)
                    count = sum(v.numel() for v in mf.state_dict.values())
                else:
                    count = count_parameters(MLRN(scale=key[1], features=key[2], blocks=key[3]))
            except (registry.ModelError, ValueError, TypeError) as exc:
                log.warning("cannot size the base model: %s", exc)
                count = 900_000
            self._params_cache[key] = count
        return self._params_cache[key]

    def _speed(self) -> tuple[float, str, bool]:
        """(steps/s, where it comes from, measured?) for the current settings."""
        key = self._settings_key()
        if self._measured is not None and self._measured[0] == key:
            return self._measured[1], f"measured on {self._measured[2]}", True
        import torch

        try:
            device = pick_device(self.device_combo.currentData())
        except Exception:  # noqa: BLE001 - DeviceError; the estimate falls back to the CPU
            device = torch.device("cpu")
        rate = rough_steps_per_s(
            device.type, self._parameters(), self.batch_spin.value(), self.patch_spin.value(), torch.get_num_threads()
        )
        if self._speed_error and self._speed_error[0] == key:
            why = "the measurement failed: " + self._speed_error[1]
        elif self.measuring:
            why = "measuring the real speed now…"
        else:
            why = "the speed is measured when this page shows"
        return rate, f"a rough guess for {device.type.upper()} until it is measured; {why}", False

    def _name_error(self) -> str | None:
        name = self.name_edit.text().strip()
        if not name:
            return "Give the new model a name."
        try:
            registry.validate_name(name)
        except registry.ModelError as exc:
            return str(exc)
        return None

    def _update_estimate(self) -> None:
        self._store()
        st = self.state
        rate, source, measured = self._speed()
        if not measured and (self.speed.busy or self._measure_timer.isActive()):
            self.estimate_label.setText(
                "Measuring the training speed on this device with a few real steps of these settings…"
            )
            return
        steps = st.planned_steps() or 0
        passes = passes_over_data(steps, st.batch, st.patch, st.scale, st.train_pixels())
        if st.budget_minutes:
            head = f"≈ {fmt_steps(steps)} steps in {fmt_duration(st.minutes * 60)}"
        else:
            head = f"{fmt_steps(steps)} steps ≈ {fmt_duration(steps / rate if rate > 0 else None)}"
        text = f"{head}, about {passes:.1f} passes over your photos' pixels ({rate:.2f} steps/s, {source})."
        if st.budget_minutes:
            text += " The hold-out checks count toward the time."
        if steps < 300:
            text += " A short run: expect the result to stay close to the starting model."
        self.estimate_label.setText(text)

    # -- slots
    @Slot(int)
    def _on_scale_combo_changed(self, _index: int) -> None:
        self._fill_bases(self.base_combo.currentData() or None)
        if not self._name_edited:
            self.state.scale = int(self.scale_combo.currentData())
            self.name_edit.setText(self.state.default_name())
        self._on_settings_changed()

    @Slot(bool)
    def _on_inputs_radio_clicked(self, _checked: bool) -> None:
        self._inputs_chosen = True

    @Slot(bool)
    def _on_jpeg_radio_toggled(self, _checked: bool) -> None:
        """Camera JPEG inputs start from the photo model, clean ones from the paper model (built-in bases only;
        the user's own models and files stay as chosen)."""
        if self.base_combo.currentData() in self._builtin_bases():
            self._fill_bases(self.base_combo.currentData())

    @Slot(int)
    def _on_device_combo_changed(self, _index: int) -> None:
        self._on_settings_changed()

    @Slot(str)
    def _on_name_edit_edited(self, _text: str) -> None:
        self._name_edited = True

    @Slot(str)
    def _on_name_edit_changed(self, _text: str) -> None:
        error = self._name_error()
        name = self.name_edit.text().strip()
        if error:
            self.name_note.setText(error)
            self.name_note.setStyleSheet(ERROR_STYLE)
        elif registry.user_model_path(name).exists():
            self.name_note.setText(f"You already have a model named '{name}'; you will be asked before it is replaced.")
            self.name_note.setStyleSheet(WARN_STYLE)
        else:
            self.name_note.setText("Saved with your models, with a card describing how it was trained.")
            self.name_note.setStyleSheet("")
        self.completeChanged.emit()

    @Slot()
    def _on_settings_changed(self, *_args) -> None:
        scratch = not self.base_combo.currentData()
        if scratch != self._scratch:  # a new network learns with a higher rate than a fine-tune
            self._scratch = scratch
            self.lr_spin.setValue(SCRATCH_LR if scratch else FT_LR)
        self.features_spin.setEnabled(scratch)
        self.blocks_spin.setEnabled(scratch)
        for w in (self.jpeg_min, self.jpeg_max, self.noise_spin):
            w.setEnabled(self.jpeg_radio.isChecked())
        self.minutes_spin.setEnabled(self.minutes_radio.isChecked())
        self.steps_spin.setEnabled(self.steps_radio.isChecked())
        self._update_estimate()
        small = [p for p, why in self.state.too_small() if why.startswith("too small for")]  # not thumbnails
        if small:
            self.size_note.setText(
                f"{len(small)} photo{'s are' if len(small) != 1 else ' is'} smaller than one "
                f"{self.state.min_train_side} px training patch at x{self.state.scale} and "
                "will not be used (a smaller patch size keeps them)."
            )
        self.size_note.setVisible(bool(small))
        self._schedule_measure()
        self.completeChanged.emit()

    def _schedule_measure(self) -> None:
        """Measure the speed of the current settings soon, unless known, failed or being measured already."""
        key = self._settings_key()
        known = self._measured is not None and self._measured[0] == key
        failed = self._speed_error is not None and self._speed_error[0] == key
        if known or failed or self._speed_key == key or not self.isVisible() or len(self.state.candidates()) < 2:
            return
        self.speed.stop()  # superseded, if running: a new one starts when it has stopped
        self._measure_timer.start()
        self._update_estimate()

    @Slot()
    def _on_measure_timer_timeout(self) -> None:
        if not self.speed.busy and self.isVisible():
            self.measure()

    @Slot()
    def _on_measure_button_clicked(self) -> None:
        self._measured = self._speed_error = None
        self.measure()

    def measure(self) -> None:
        """Time a few real training steps of the current settings (the run's own TrainConfig builder)."""
        if self.speed.busy:
            return
        self._store()
        job = SpeedJob(self.state.build_config(out="speed"), tuple(str(p) for p in self.state.candidates()))
        job.measured.connect(self._on_speed_measured)
        self._speed_key = self._settings_key()
        self.measure_button.setEnabled(False)
        self.speed.start(job)
        self._update_estimate()

    @Slot(float, str)
    def _on_speed_measured(self, rate: float, device: str) -> None:
        if self.speed.is_current(self.sender()) and self._speed_key is not None:
            self._measured = (self._speed_key, rate, device)

    def _on_speed_done(self, error: str) -> None:
        if error and self._speed_key is not None:
            self._speed_error = (self._speed_key, error)  # shown in the estimate; not retried by itself
        self._speed_key = None
        self.measure_button.setEnabled(True)
        self.measure_button.setText("Measure again" if self._measured is not None else "Measure")
        self._update_estimate()
        self._schedule_measure()  # the settings may have changed while it ran

    @property
    def measuring(self) -> bool:
        return self.speed.busy
