"""The wizard's Result page: bicubic, the base and the fine-tuned model scored on the hold-out
(:class:`app.wizard.jobs.EvalJob`), a plain verdict, and saving the model with its card."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWizardPage,
)

from app.wizard.before_after import BeforeAfterView
from app.wizard.current import CurrentJob
from app.wizard.jobs import (
    BASE,
    BICUBIC,
    CLEAN,
    DEGRADED,
    TUNED,
    EvalJob,
    EvalRequest,
    EvalResult,
)
from app.wizard.state import WizardState
from app.wizard.widgets import (
    ERROR_STYLE,
    GOOD_STYLE,
    WARN_STYLE,
    form_grid,
    wrap_label,
)
from app.worker import JobRunner
from mlrn_core import model_summary, registry
from mlrn_core.cards import CardTable, model_card
from mlrn_core.finetune import Verdict, verdict
from mlrn_core.runs import RunFolder
from mlrn_core.terminal import fmt_duration
from mlrn_core.trainer import (
    TrainConfig,
)

log = logging.getLogger(__name__)


class ResultPage(QWizardPage):
    """Hold-out PSNR/SSIM of bicubic, base and fine-tuned; the verdict; save with a model card."""

    saved = Signal(str, bool)  # model name, make it the current model

    def __init__(self, state: WizardState, runner: JobRunner) -> None:
        super().__init__()
        self.state = state
        self.runner = runner
        self.scoring = CurrentJob(runner, self._on_scoring_done, self)
        self._result: EvalResult | None = None
        self._verdict: Verdict | None = None
        self.setTitle("Result")
        self.setSubTitle(
            "Measured on your hold-out photos, which the model never saw (PSNR and SSIM on "
            "luminance, the protocol of the published benchmarks)."
        )
        self.progress = QProgressBar()
        self.progress_label = QLabel()
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.verdict_label = wrap_label()
        font = self.verdict_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.verdict_label.setFont(font)
        self.detail_label = wrap_label()
        self.compare = BeforeAfterView("What fine-tuning changed: the region of a hold-out photo it changed most")
        self.compare.setVisible(False)

        self.save_check = QGroupBox("Save it as one of my models")
        self.save_check.setCheckable(True)
        self.save_check.setChecked(True)
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(64)
        self.current_check = QCheckBox("Make it the current model in the main window")
        self.current_note = wrap_label()
        self.save_check.setLayout(
            form_grid([("Name", self.name_edit), ("", self.current_check), ("", self.current_note)])
        )
        self.card_view = QTextBrowser()
        self.card_view.setOpenExternalLinks(False)

        layout = QVBoxLayout(self)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.table)
        layout.addWidget(self.verdict_label)
        layout.addWidget(self.detail_label)
        card_column = QVBoxLayout()
        card_column.addWidget(QLabel("Model card (saved with the model):"))
        card_column.addWidget(self.card_view, 1)
        bottom = QHBoxLayout()  # side by side: a small window (1366x768) shows both without squeezing
        bottom.addWidget(self.compare, 0, Qt.AlignmentFlag.AlignTop)
        bottom.addLayout(card_column, 1)
        layout.addLayout(bottom, 1)
        layout.addWidget(self.save_check)
        self.name_edit.textChanged.connect(self._on_name_edit_changed)

    @property
    def model_path(self) -> Path:
        assert self.state.run_dir is not None  # the Training page completes only with a run folder
        return RunFolder(self.state.run_dir).model

    def initializePage(self) -> None:  # noqa: N802 - Qt override
        self._result = None
        self._verdict = None
        self.name_edit.setText(self.state.name)
        self.table.setRowCount(0)
        self.compare.setVisible(False)
        self.verdict_label.clear()
        self.detail_label.setText(self._training_summary())
        self.current_check.setChecked(False)
        self.current_check.setEnabled(False)
        self.current_note.setText("Waiting for the hold-out scores.")
        cfg = self.state.cfg
        files = tuple(cfg.val) if cfg and cfg.val else tuple(self.state.holdout)
        job = EvalJob(
            EvalRequest(
                self.model_path,
                self.state.base,
                files,
                self.state.scale,
                self.state.degradation,
                cfg.device if cfg else "auto",
                names=tuple(Path(h).name for h in self.state.holdout),
            )
        )
        job.progress.connect(self._on_job_progress)
        job.result.connect(self._on_job_result)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.progress_label.setText(f"Scoring the models on {len(self.state.holdout)} hold-out photo(s)…")
        self.progress_label.setStyleSheet("")
        self.scoring.start(job)
        self._update_card()
        self.completeChanged.emit()

    def cleanupPage(self) -> None:  # noqa: N802 - Qt override (Back)
        self.scoring.stop()

    def isComplete(self) -> bool:  # noqa: N802 - Qt override
        return not self.scoring.busy

    @property
    def result(self) -> EvalResult | None:
        return self._result

    @property
    def verdict(self) -> Verdict | None:
        return self._verdict

    def _training_summary(self) -> str:
        try:
            info = registry.read_model_file(self.model_path).info
        except registry.ModelError as exc:
            return f"Cannot read the trained model: {exc}"
        prov = info.get("provenance", {})
        data = prov.get("data", {})
        return (
            f"The kept checkpoint is from step {prov.get('steps', '?')} (the best on the hold-out), after "
            f"{fmt_duration(prov.get('train_seconds'))} on {prov.get('device', '?')}; trained on "
            f"{data.get('images', '?')} photos, {len(self.state.holdout)} held out."
        )

    # -- job signals
    @Slot(int, int)
    def _on_job_progress(self, done: int, total: int) -> None:
        if self.scoring.is_current(self.sender()):
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    @Slot(object)
    def _on_job_result(self, result: EvalResult) -> None:
        if self.scoring.is_current(self.sender()):
            self.show_result(result)

    def _on_scoring_done(self, error: str) -> None:
        self.progress.setVisible(False)
        if error:
            self.progress_label.setText(f"The hold-out could not be scored: {error}")
            self.progress_label.setStyleSheet(ERROR_STYLE)
            self.current_note.setText("Without a score it is not made the current model; you can still save it.")
        else:
            self.progress_label.setStyleSheet("")
            self.progress_label.setText(
                f"Scored on {len(self.state.holdout)} hold-out photo(s) (the most "
                f"detailed region of each, at most {self.state.holdout_side} px a side)."
            )
        self.completeChanged.emit()

    def show_result(self, result: EvalResult) -> None:
        """Fill the table and the verdict, and decide whether the model may become the current one."""
        self._result = result
        domains = [d for d in (CLEAN, DEGRADED) if d in result.scores]
        headers = ["Method"]
        for d in domains:
            suffix = " (camera-JPEG inputs)" if d == DEGRADED else (" (clean inputs)" if len(domains) > 1 else "")
            headers += [f"PSNR{suffix}", f"SSIM{suffix}"]
        rows = [(BICUBIC, "Bicubic")]
        if self.state.base:
            rows.append((BASE, f"Base: {result.base_name or self.state.base}"))
        rows.append((TUNED, f"Fine-tuned: {self.state.name}"))
        self.table.setColumnCount(len(headers))
        self.table.setHorizontalHeaderLabels(headers)
        self.table.setRowCount(len(rows))
        self.table.setFixedHeight(
            self.table.horizontalHeader().height() + 4 + sum(self.table.rowHeight(r) for r in range(len(rows)))
        )
        for r, (key, label) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(label))
            for i, d in enumerate(domains):
                s = result.scores[d].get(key)
                psnr = f"{s.psnr:.2f} dB" if s else "n/a"
                ssim = f"{s.ssim:.4f}" if s else "n/a"
                for j, text in enumerate((psnr, ssim)):
                    item = QTableWidgetItem(text)
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    if key == TUNED:
                        f = item.font()
                        f.setBold(True)
                        item.setFont(f)
                    self.table.setItem(r, 1 + 2 * i + j, item)
        # the verdict is taken in the domain the model was trained for
        domain = DEGRADED if DEGRADED in result.scores else CLEAN
        scores = result.scores[domain]
        base = scores.get(BASE)
        where = " (camera-JPEG inputs)" if domain == DEGRADED else ""
        v = verdict(scores[TUNED].psnr, base.psnr if base else None, scores[BICUBIC].psnr, where)
        self._verdict = v
        self.verdict_label.setText(v.text)
        if result.comparison is not None:
            self.compare.set_comparison(result.comparison, f"Fine-tuned: {self.state.name}")
        self.compare.setVisible(result.comparison is not None)
        self.verdict_label.setStyleSheet(GOOD_STYLE if v.recommended else WARN_STYLE if v.better else ERROR_STYLE)
        notes = list(result.warnings)
        if self.state.base and BASE not in scores:
            notes.append("The base model could not be scored, so there is nothing to compare with.")
        if notes:
            self.detail_label.setText(self._training_summary() + " " + " ".join(notes))
        # with a base model that could not be scored there is no evidence either way: not recommended
        recommended = v.recommended and (BASE in scores or not self.state.base)
        self.current_check.setEnabled(recommended)
        self.current_check.setChecked(recommended)
        if recommended:
            self.current_note.setText(f"It beats {v.reference} on your hold-out.")
            self.current_note.setStyleSheet("")
        else:
            self.current_note.setText(
                "Not offered as the current model: it does not beat "
                + ("bicubic" if v.better else v.reference)
                + " on your hold-out. You can "
                "still save it and pick it yourself in the main window."
            )
            self.current_note.setStyleSheet(WARN_STYLE)
        self._update_card()

    # -- saving
    def card_text(self, name: str) -> str:
        """The model card: the trainer's card (clean hold-out numbers) plus the wizard's own comparison."""
        cfg = self.state.cfg
        try:
            info = registry.read_model_file(self.model_path).info
        except registry.ModelError:
            info = {}
        prov = info.get("provenance", {})
        metrics = info.get("metrics", {})
        clean = self._result.scores.get(CLEAN, {}) if self._result else {}

        def psnr(key: str, fallback: str) -> float | None:
            return clean[key].psnr if key in clean else metrics.get(fallback)

        tables = []
        for domain, scores in self._result.scores.items() if self._result else ():
            if domain == DEGRADED:
                title, intro = (
                    "Hold-out, camera-JPEG inputs",
                    (
                        f"The hold-out LR inputs made like camera files ({self.state.degradation.describe()}; "
                        "fixed seed):"
                    ),
                )
            else:
                title, intro = "Hold-out, clean inputs", "MATLAB bicubic LR inputs, as in the table above:"
            rows = [
                (label, scores[key])
                for key, label in ((BICUBIC, "bicubic"), (BASE, "base model"), (TUNED, "this model"))
                if key in scores
            ]
            tables.append(CardTable(title, intro, rows))
        held = ", ".join(Path(h).name for h in self.state.holdout)
        notes = [
            f"Hold-out photos (never trained on): {held}; scored on the most detailed region of each, at "
            f"most {self.state.holdout_side} px a side."
        ]
        if self._verdict is not None:
            notes.append(self._verdict.text)
        return model_card(
            name=name,
            scale=self.state.scale,
            base=(cfg.init if cfg and cfg.init else None) or "none (trained from scratch)",
            data=dict(prov.get("data", {}), excluded=list(self.state.holdout)),  # not the refused thumbnails
            steps=prov.get("steps", 0),
            seconds=prov.get("train_seconds", 0.0),
            device=prov.get("device", "?"),
            val_psnr=psnr(TUNED, "val_psnr"),
            val_ssim=clean[TUNED].ssim if TUNED in clean else metrics.get("val_ssim"),
            bicubic_psnr=psnr(BICUBIC, "val_bicubic_psnr"),
            base_psnr=psnr(BASE, "val_base_psnr"),
            config=cfg or TrainConfig(data=("?",), out="?"),
            degraded_inputs=False if clean else None,
            tables=tables,
            notes=notes,
            lead=self.card_lead(name, prov.get("data", {}).get("images", 0)),
        )

    def card_lead(self, name: str, photos: int) -> str:
        """The card's opening paragraph, from the hold-out scores in the inputs the model was trained for."""
        gain, reference = None, (self._result.base_name if self._result else None) or self.state.base or "bicubic"
        if self._result is not None:
            domain = DEGRADED if DEGRADED in self._result.scores else CLEAN
            scores = self._result.scores[domain]
            ref = scores.get(BASE) if self.state.base else scores.get(BICUBIC)
            if not self.state.base:
                reference = "bicubic"
            if ref is not None and TUNED in scores:
                gain = scores[TUNED].psnr - ref.psnr
        base = (self._result.base_name if self._result else None) or self.state.base
        return model_summary.card_lead(
            name=name,
            scale=self.state.scale,
            base=base,
            gain_db=gain,
            reference=reference,
            photos=int(photos or 0),
            degraded=self.state.jpeg,
            held_out=len(self.state.holdout),
        )

    def _update_card(self) -> None:
        if self.state.run_dir is not None and self.model_path.exists():
            self.card_view.setMarkdown(self.card_text(self.name_edit.text().strip() or self.state.name))

    @Slot(str)
    def _on_name_edit_changed(self, _text: str) -> None:
        if self.state.run_dir is not None and self.model_path.exists():
            self._update_card()

    def validatePage(self) -> bool:  # noqa: N802 - Qt override (Finish)
        if not self.save_check.isChecked():
            return True
        name = self.name_edit.text().strip()
        try:
            registry.validate_name(name)
        except registry.ModelError as exc:
            QMessageBox.warning(self, "Cannot save the model", str(exc))
            return False
        dest = registry.user_model_path(name)
        if dest.exists():
            answer = QMessageBox.question(
                self, "Replace model", f"You already have a model named '{name}' ({dest}). Replace it?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            registry.register_user_model(self.model_path, name, self.card_text(name), overwrite=True)
        except (registry.ModelError, OSError) as exc:
            QMessageBox.warning(self, "Cannot save the model", f"Cannot save '{self.model_path}' as '{dest}': {exc}")
            return False
        self.saved.emit(name, self.current_check.isEnabled() and self.current_check.isChecked())
        return True
