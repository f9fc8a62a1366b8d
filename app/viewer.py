"""Zoomable image views that move together, for comparing two renders of one photo.

:class:`ViewState` holds zoom and centre (in output pixels) shared by every view, so zoom and pan are
in lockstep by construction. :class:`ViewerImage` is what one side shows: a finished render, or a
render in progress (a dimmed placeholder with the finished tiles on top, clipped to the region that is
done). :class:`ImageView` paints one image, or two with a draggable divider (split mode). Above 100%
pixels are drawn nearest-neighbour so they can be judged; below, from the display pyramid with
smoothing. Colours come from the palette, so the views follow a dark or light system theme.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QRegion,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from app.pyramid import Pyramid

MIN_ZOOM = 0.01
MAX_ZOOM = 32.0
MAX_FIT_ZOOM = 8.0
WHEEL_STEP = 1.25
DIVIDER_GRAB_PX = 8


class ViewState(QObject):
    """Zoom (screen px per output px) and centre (output px) shared by all views; ``fit`` follows resizes."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.zoom = 1.0
        self.cx = 0.0
        self.cy = 0.0
        self.fit = True
        self.image_w = 0
        self.image_h = 0
        self.viewport = QSize(1, 1)

    def fit_zoom(self) -> float:
        if self.image_w <= 0 or self.image_h <= 0:
            return 1.0
        z = min(self.viewport.width() / self.image_w, self.viewport.height() / self.image_h)
        return max(MIN_ZOOM, min(MAX_FIT_ZOOM, z))

    def set_viewport(self, size: QSize) -> None:
        if size.width() <= 0 or size.height() <= 0 or size == self.viewport:
            return
        self.viewport = QSize(size)
        if self.fit:
            self._apply_fit()
            self.changed.emit()

    def set_image_size(self, width: int, height: int, focus: tuple[float, float] | None = None) -> None:
        """A new image: keep the view on the same part of it when only the scale changed (or the size is the
        same); an image of another size opens at 100% (output pixels) on ``focus`` ((x, y) fractions: its most
        detailed region), or fitted when it fits the view at 100% anyway or no focus is given."""
        if (width, height) == (self.image_w, self.image_h):
            return
        old_w, old_h = self.image_w, self.image_h
        self.image_w, self.image_h = width, height
        same_shape = old_w > 0 and old_h > 0 and abs(width / old_w - height / old_h) < 0.02 * width / old_w
        if not same_shape and focus is not None and self.fit_zoom() < 1.0:
            self.zoom, self.fit = 1.0, False
            half_w, half_h = self.viewport.width() / 2, self.viewport.height() / 2
            # on the detail, but with the view inside the picture (no margin) on each axis it fills
            self.cx = min(max(focus[0] * width, half_w), width - half_w) if width > 2 * half_w else width / 2
            self.cy = min(max(focus[1] * height, half_h), height - half_h) if height > 2 * half_h else height / 2
            self._clamp()
        elif self.fit or not same_shape:
            self.fit = True
            self._apply_fit()
        else:
            ratio = width / old_w
            self.cx, self.cy = self.cx * ratio, self.cy * ratio
            self.zoom = max(MIN_ZOOM, min(MAX_ZOOM, self.zoom / ratio))
        self.changed.emit()

    def _apply_fit(self) -> None:
        self.zoom = self.fit_zoom()
        self.cx, self.cy = self.image_w / 2, self.image_h / 2

    def set_fit(self) -> None:
        self.fit = True
        self._apply_fit()
        self.changed.emit()

    def origin(self, size: QSize | None = None) -> tuple[float, float]:
        """Widget position of output pixel (0, 0), rounded so pixel edges fall on screen pixels."""
        size = size or self.viewport
        return round(size.width() / 2 - self.cx * self.zoom), round(size.height() / 2 - self.cy * self.zoom)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None, size: QSize | None = None) -> None:
        """Zoom keeping the output pixel under ``anchor`` (widget coordinates) where it is."""
        size = size or self.viewport
        zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        if anchor is not None:
            ax = anchor.x() - size.width() / 2
            ay = anchor.y() - size.height() / 2
            px, py = self.cx + ax / self.zoom, self.cy + ay / self.zoom
            self.cx, self.cy = px - ax / zoom, py - ay / zoom
        self.zoom = zoom
        self.fit = False
        self._clamp()
        self.changed.emit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None, size: QSize | None = None) -> None:
        self.set_zoom(self.zoom * factor, anchor, size)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the picture by (dx, dy) screen pixels."""
        self.cx -= dx / self.zoom
        self.cy -= dy / self.zoom
        self.fit = False
        self._clamp()
        self.changed.emit()

    def center_on(self, x: float, y: float) -> None:
        self.cx, self.cy = x, y
        self.fit = False
        self._clamp()
        self.changed.emit()

    def _clamp(self) -> None:
        self.cx = min(max(self.cx, 0.0), float(self.image_w))
        self.cy = min(max(self.cy, 0.0), float(self.image_h))

    def visible_rect(self, size: QSize | None = None) -> tuple[float, float, float, float] | None:
        """The part of the output image on screen, ``(x0, y0, x1, y1)`` in output pixels."""
        if self.image_w <= 0 or self.image_h <= 0:
            return None
        size = size or self.viewport
        ox, oy = self.origin(size)
        x0 = max(0.0, -ox / self.zoom)
        y0 = max(0.0, -oy / self.zoom)
        x1 = min(float(self.image_w), (size.width() - ox) / self.zoom)
        y1 = min(float(self.image_h), (size.height() - oy) / self.zoom)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1


@dataclass
class ViewerImage:
    """One side of the comparison: a caption, the pixels shown (or a message) and how far along they are."""

    label: str
    base: Pyramid | None = None
    overlay: Pyramid | None = None  # finished tiles of a render in progress, over a dimmed ``base``
    done: QRegion = field(default_factory=QRegion)
    pending: bool = False
    progress: str = ""
    message: str = ""  # shown instead of pixels, e.g. "No MLRN model for x2"

    def mark_done(self, x: int, y: int, w: int, h: int) -> None:
        """The overlay's pixels in this rectangle (output pixels) are final: show them."""
        self.done = self.done.united(QRect(x, y, w, h))


def qimage_from_rgb8(rgb: np.ndarray, copy: bool = True) -> QImage:
    """A QImage of a uint8 HxWx3 RGB array: the one conversion the app uses.

    With ``copy`` (the default) the QImage owns its pixels, so it may outlive the array or be handed to
    another thread; without, it borrows the array's memory and must be used (painted) at once.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.copy() if copy else image


class ImageView(QWidget):
    """Paints one :class:`ViewerImage`, or two split by a draggable divider; wheel zooms, drag pans."""

    divider_moved = Signal(float)

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.first: ViewerImage | None = None
        self.second: ViewerImage | None = None  # set in split mode: shown right of the divider
        self.tags: tuple[str, str] = ("", "")
        self.divider = 0.5
        self._drag: str | None = None  # "pan" or "divider"
        self._captions: list[tuple[QRectF, str]] = []  # painted captions too narrow for their text, in full
        self._last_pos = QPointF()
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 120)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        state.changed.connect(self.update)

    # --- content -------------------------------------------------------------------------------

    def set_images(
        self, first: ViewerImage | None, second: ViewerImage | None = None, tags: tuple[str, str] = ("", "")
    ) -> None:
        """Show ``first`` (and ``second`` right of the divider); ``tags`` prefix the captions ("A", "B")."""
        self.first, self.second, self.tags = first, second, tags
        self.update()

    @property
    def split(self) -> bool:
        return self.second is not None

    def divider_x(self) -> float:
        return self.width() * self.divider

    def set_divider(self, fraction: float) -> None:
        self.divider = min(max(fraction, 0.0), 1.0)
        self.update()

    # --- events --------------------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        if self.isVisible():
            self.state.set_viewport(event.size())
        super().resizeEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.state.set_viewport(self.size())
        super().showEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.state.zoom_by(WHEEL_STEP**steps, event.position(), self.size())
        event.accept()

    def _near_divider(self, pos: QPointF) -> bool:
        return self.split and abs(pos.x() - self.divider_x()) <= DIVIDER_GRAB_PX

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        self._last_pos = event.position()
        if self._near_divider(event.position()):
            self._drag = "divider"
        else:
            self._drag = "pan"
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        if self._drag == "divider":
            self.set_divider(pos.x() / max(1, self.width()))
            self.divider_moved.emit(self.divider)
        elif self._drag == "pan":
            delta = pos - self._last_pos
            self._last_pos = pos
            self.state.pan_by(delta.x(), delta.y())
        else:
            shape = Qt.CursorShape.SplitHCursor if self._near_divider(pos) else Qt.CursorShape.OpenHandCursor
            self.setCursor(shape)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = None
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        """Double-click toggles between fit and 100% at the clicked point."""
        if self.state.fit:
            self.state.set_zoom(1.0 / self.devicePixelRatioF(), event.position(), self.size())
        else:
            self.state.set_fit()
        event.accept()

    # --- painting ------------------------------------------------------------------------------

    def caption_tip(self, pos: QPointF) -> str:
        """The whole caption under ``pos`` when it was painted shortened ('…'), else ''."""
        return next((text for rect, text in self._captions if rect.contains(pos)), "")

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:  # a shortened caption shows in full on hover
            tip = self.caption_tip(QPointF(event.pos()))
            if tip:
                QToolTip.showText(event.globalPos(), tip, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        self._captions = []
        p = QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QPalette.ColorRole.Window).darker(125))
        full = QRectF(self.rect())
        if self.second is None:
            self._paint_image(p, self.first, full)
            self._paint_caption(p, self.first, self.tags[0], left=True)
        else:
            x = self.divider_x()
            self._paint_image(p, self.first, QRectF(0, 0, x, self.height()))
            self._paint_image(p, self.second, QRectF(x, 0, self.width() - x, self.height()))
            self._paint_caption(p, self.first, self.tags[0], left=True)
            self._paint_caption(p, self.second, self.tags[1], left=False)
            self._paint_divider(p, x)
        p.end()

    def _paint_image(self, p: QPainter, image: ViewerImage | None, clip: QRectF) -> None:
        if image is None or clip.width() <= 0:
            return
        if image.base is None:
            if image.message:
                p.save()
                p.setPen(pal_text(self))
                p.drawText(
                    clip.adjusted(24, 24, -24, -24),
                    Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                    image.message,
                )
                p.restore()
            return
        p.save()
        p.setClipRect(clip)
        z = self.state.zoom
        ox, oy = self.state.origin(self.size())
        self._paint_pyramid(p, image.base, ox, oy, z, clip)
        if image.pending:
            area = QRectF(ox, oy, self.state.image_w * z, self.state.image_h * z).intersected(clip)
            shade = QColor(self.palette().color(QPalette.ColorRole.Window))
            shade.setAlpha(120)
            p.fillRect(area, shade)
            if image.overlay is not None and not image.done.isEmpty():
                region = QTransform(z, 0, 0, z, ox, oy).map(image.done)
                p.setClipRegion(region.intersected(clip.toAlignedRect()))
                self._paint_pyramid(p, image.overlay, ox, oy, z, clip)
        p.restore()

    def _paint_pyramid(self, p: QPainter, pyr: Pyramid, ox: float, oy: float, z: float, clip: QRectF) -> None:
        dpr = self.devicePixelRatioF()
        k = pyr.level_for(z * dpr)
        arr = pyr.levels[k]
        f = pyr.unit * 2**k
        lh, lw = arr.shape[:2]
        lx0 = max(0, math.floor((clip.left() - ox) / (z * f)))
        ly0 = max(0, math.floor((clip.top() - oy) / (z * f)))
        lx1 = min(lw, math.ceil((clip.right() - ox) / (z * f)))
        ly1 = min(lh, math.ceil((clip.bottom() - oy) / (z * f)))
        if lx1 <= lx0 or ly1 <= ly0:
            return
        crop = np.ascontiguousarray(arr[ly0:ly1, lx0:lx1])  # kept alive until drawn
        target = QRectF(ox + lx0 * f * z, oy + ly0 * f * z, (lx1 - lx0) * f * z, (ly1 - ly0) * f * z)
        # nearest-neighbour from 100% up so pixels can be judged; smoothing below, and for the LR placeholder
        smooth = f * z * dpr < 0.999 or pyr.unit > 1
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        p.drawImage(target, qimage_from_rgb8(crop, copy=False))

    def _paint_caption(self, p: QPainter, image: ViewerImage | None, tag: str, left: bool) -> None:
        if image is None or not image.label:
            return
        caption = (f"{tag} · " if tag else "") + image.label
        text = caption + (f"  ·  {image.progress}" if image.progress else "")
        font = QFont(self.font())
        font.setBold(True)
        fm = QFontMetrics(font)
        pad = 6
        # +4: elidedText rounds; with the exact advance it elides a text that fits
        w = min(fm.horizontalAdvance(text) + 2 * pad + 4, max(40, self.width() // (2 if self.split else 1) - 16))
        text = fm.elidedText(text, Qt.TextElideMode.ElideRight, w - 2 * pad)
        h = fm.height() + pad
        x = 8 if left else self.width() - w - 8
        rect = QRectF(x, 8, w, h)
        if fm.horizontalAdvance(caption) + 2 * pad + 4 > w:
            self._captions.append((rect, caption))
        bg = QColor(self.palette().color(QPalette.ColorRole.Window))
        bg.setAlpha(215)
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(bg)
        p.drawRoundedRect(rect, 4, 4)
        p.setFont(font)
        p.setPen(pal_text(self))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        p.restore()

    def _paint_divider(self, p: QPainter, x: float) -> None:
        pal = self.palette()
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2))
        p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        centre = QPointF(x, self.height() / 2)
        p.setBrush(pal.color(QPalette.ColorRole.Highlight))
        p.drawEllipse(centre, 9, 9)
        p.setPen(QPen(pal.color(QPalette.ColorRole.HighlightedText), 2))
        for d in (-1, 1):  # two small arrows: this handle moves sideways
            p.drawLine(centre + QPointF(2 * d, -4), centre + QPointF(5 * d, 0))
            p.drawLine(centre + QPointF(5 * d, 0), centre + QPointF(2 * d, 4))
        p.restore()


def pal_text(widget: QWidget) -> QColor:
    return widget.palette().color(QPalette.ColorRole.WindowText)
