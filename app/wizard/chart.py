"""A small line chart drawn with QPainter, for the wizard's live loss and hold-out PSNR curves.

PySide6-Essentials has no QtCharts, and the wizard needs little: a few series of (x, y) points, some
drawn as reference lines across the whole width (the base model's and bicubic's PSNR), "nice" axis
ticks, a legend, and an empty-state message. The data lives in :class:`Series` objects owned by the
caller; :meth:`LineChart.set_series` replaces them and repaints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


@dataclass
class Series:
    """One curve. ``hline`` series are drawn at their last y value across the whole x range."""

    name: str
    color: str
    points: list[tuple[float, float]] = field(default_factory=list)
    hline: bool = False
    width: float = 1.6
    dashed: bool = False
    markers: bool = False


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo < 1e-12:
        span = abs(lo) * 0.1 or 1.0
        lo, hi = lo - span, hi + span
    raw = (hi - lo) / max(1, count)
    exp = math.floor(math.log10(raw))
    step = next(m * 10**exp for m in (1, 2, 2.5, 5, 10) if m * 10**exp >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    value = start
    while value <= hi + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt_tick(value: float, step: float) -> str:
    if step >= 1 and abs(value) >= 1000:
        return f"{value / 1000:g}k"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if step < 1 and step * 10**decimals % 1:
        decimals += 1
    return f"{value:.{decimals}f}"


class LineChart(QWidget):
    """Curves over steps: title, axes with nice ticks, legend; says ``empty_text`` until there is data."""

    def __init__(self, title: str, empty_text: str = "no data yet", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.empty_text = empty_text
        self._series: list[Series] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(360, 200)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(220, 140)

    def set_series(self, series: list[Series]) -> None:
        self._series = list(series)
        self.update()

    def has_data(self) -> bool:
        return any(s.points for s in self._series if not s.hline)

    # -- geometry
    def _ranges(self) -> tuple[float, float, float, float] | None:
        curves = [p for s in self._series if not s.hline for p in s.points if math.isfinite(p[1])]
        if not curves:
            return None
        levels = [s.points[-1][1] for s in self._series if s.hline and s.points and math.isfinite(s.points[-1][1])]
        xs = [p[0] for p in curves]
        ys = [p[1] for p in curves] + levels
        x0, x1 = min(0.0, min(xs)), max(xs)
        if x1 <= x0:
            x1 = x0 + 1
        y0, y1 = min(ys), max(ys)
        pad = (y1 - y0) * 0.08 or max(abs(y1) * 0.02, 1e-3)
        return x0, x1, y0 - pad, y1 + pad

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pal = self.palette()
        p.fillRect(self.rect(), pal.base())
        text_color = pal.text().color()
        grid_color = QColor(text_color)
        grid_color.setAlpha(40)
        font = QFont(self.font())
        fm = QFontMetrics(font)
        title_font = QFont(font)
        title_font.setBold(True)
        p.setFont(title_font)
        p.setPen(text_color)
        p.drawText(QRectF(8, 4, self.width() - 16, fm.height() + 2), Qt.AlignmentFlag.AlignLeft, self.title)
        p.setFont(font)
        ranges = self._ranges()
        if ranges is None:
            faded = QColor(text_color)
            faded.setAlpha(140)
            p.setPen(faded)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            p.end()
            return
        x0, x1, y0, y1 = ranges
        yticks = [t for t in nice_ticks(y0, y1, 4) if y0 <= t <= y1]
        xticks = [t for t in nice_ticks(x0, x1, 5) if x0 <= t <= x1]
        ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0
        xstep = xticks[1] - xticks[0] if len(xticks) > 1 else 1.0
        ylabels = [_fmt_tick(t, ystep) for t in yticks]
        left = 10 + max((fm.horizontalAdvance(s) for s in ylabels), default=20)
        top = fm.height() + 10
        legend_h = fm.height() + 6
        plot = QRectF(
            left, top, max(10.0, self.width() - left - 12), max(10.0, self.height() - top - fm.height() - legend_h - 10)
        )

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(
                plot.left() + (x - x0) / (x1 - x0) * plot.width(), plot.bottom() - (y - y0) / (y1 - y0) * plot.height()
            )

        # grid and ticks
        p.setPen(QPen(grid_color, 1))
        for t in yticks:
            y = to_px(x0, t).y()
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        p.setPen(text_color)
        for t, label in zip(yticks, ylabels):
            y = to_px(x0, t).y()
            p.drawText(
                QRectF(0, y - fm.height() / 2, left - 5, fm.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
        for t in xticks:
            x = to_px(t, y0).x()
            label = _fmt_tick(t, xstep)
            w = fm.horizontalAdvance(label)
            p.drawText(
                QRectF(x - w / 2 - 2, plot.bottom() + 2, w + 4, fm.height()), Qt.AlignmentFlag.AlignCenter, label
            )
        axis = QColor(text_color)
        axis.setAlpha(120)
        p.setPen(QPen(axis, 1))
        p.drawRect(plot)

        # curves, clipped to the plot
        p.save()
        p.setClipRect(plot.adjusted(-1, -1, 1, 1))
        for s in self._series:
            if not s.points:
                continue
            pen = QPen(QColor(s.color), s.width)
            if s.dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            if s.hline:
                y = to_px(x0, s.points[-1][1]).y()
                p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
                continue
            pts = [to_px(x, y) for x, y in s.points if math.isfinite(y)]
            if len(pts) == 1 or s.markers:
                p.setBrush(QColor(s.color))
                for pt in pts:
                    p.drawEllipse(pt, 2.5, 2.5)
                p.setBrush(Qt.BrushStyle.NoBrush)
            if len(pts) > 1:
                path = QPainterPath(pts[0])
                for pt in pts[1:]:
                    path.lineTo(pt)
                p.drawPath(path)
        p.restore()

        # legend along the bottom
        x = plot.left()
        y = self.height() - legend_h + 2
        for s in self._series:
            if not s.points:
                continue
            label = s.name
            if s.hline:
                label = f"{s.name} ({s.points[-1][1]:.2f})"
            pen = QPen(QColor(s.color), 2.5)
            if s.dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            mid = y + fm.height() / 2
            p.drawLine(QPointF(x, mid), QPointF(x + 16, mid))
            p.setPen(text_color)
            w = fm.horizontalAdvance(label)
            p.drawText(QRectF(x + 20, y, w + 4, fm.height()), Qt.AlignmentFlag.AlignVCenter, label)
            x += 20 + w + 14
        p.end()
