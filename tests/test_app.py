"""Tests of the main window (pytest-qt, offscreen) and of the pure helpers behind it.

They drive the real widgets: drop files on the window, turn the wheel, drag, press the actions, wait for
the render signals. Models are tiny (8 features, 1 block) except in the event-loop latency test, which
uses the real MLRN architecture; images are a few hundred pixels. Each test gets its own MLRN_HOME and an
empty built-in models folder, so the result does not depend on whether shipped weights exist yet.
"""

from __future__ import annotations

import gc
import io
import json
import os
import re
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSize, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox

from app.image_cache import ImageCache, ImageId, RenderKey, RenderResult
from app.main import configure_torch_threads
from app.main_window import MainWindow
from app.pyramid import Pyramid
from app.render import INTERACTIVE_CPU_TILE, VisibleRegion, bicubic_uint8, make_priority, to_uint8
from app.settings import Settings, load_settings, save_settings, settings_path
from app.viewer import ViewState
from app.worker import RenderJob, RenderRequest, RenderSpec
from mlrn_core import paths, registry
from mlrn_core.imageio import read_image
from mlrn_core.model import MLRN
from mlrn_core.tiling import plan_tiles, quality_label, upscale_array

RENDER_TIMEOUT_MS = 60_000


# --------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MLRN_HOME and an empty built-in models folder for this test."""
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    builtin = tmp_path / "builtin"
    builtin.mkdir()
    monkeypatch.setattr(paths, "builtin_models_dir", lambda: builtin)
    return tmp_path


def _tiny_model_file(path: Path, scale: int = 2, seed: int = 0, **hparams) -> Path:
    torch.manual_seed(seed)
    kwargs = {"features": 8, "blocks": 1, **hparams}
    return registry.save_model(path, MLRN(scale=scale, **kwargs), info={"note": "test"})


@pytest.fixture
def tiny_model(home: Path) -> Path:
    """A tiny x2 model registered as the user model 'tiny'."""
    src = _tiny_model_file(home / "tiny-src.pt")
    entry = registry.register_user_model(src, "tiny", "# tiny\nA test model.\n")
    return entry.path


def _photo(path: Path, w: int = 200, h: int = 150, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=2)
    img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def photo(home: Path) -> Path:
    return _photo(home / "photo.png")


@pytest.fixture
def window(qtbot, home: Path) -> MainWindow:
    configure_torch_threads()
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    qtbot.waitExposed(w)
    return w


def _render_model(path: Path, model: Path, precision: str = "auto") -> RenderResult:
    """One render job of ``model`` on the picture at ``path`` (x2, 64 px tiles, CPU), run on this thread."""
    picture = read_image(path)
    image_id = ImageId.of(path)
    key = RenderKey(image_id, f"model:{Path(model).stem}", 2, 64, 16, "cpu", precision)
    spec = RenderSpec(key, "model", f"MLRN {Path(model).stem}", str(model))
    lr = Pyramid.build(to_uint8(picture.rgb))
    job = RenderJob(RenderRequest(path, image_id, 2, (spec,), tile=64, picture=picture, lr=lr))
    done, failed = [], []
    job.render_done.connect(done.append)
    job.render_failed.connect(lambda _k, msg: failed.append(msg))
    job.run()
    assert not failed and len(done) == 1, failed
    return done[0]


def _drop(window: MainWindow, *paths_: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths_])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(  # QPoint: the drag-enter constructor takes no QPointF before PySide6 6.12
        pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)


def _wait_right_done(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(
        lambda: (
            window.right_image.base is not None
            and not window.right_image.pending
            and window.session.right_key is not None
        ),
        timeout=RENDER_TIMEOUT_MS,
    )


def _wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.busy, timeout=RENDER_TIMEOUT_MS)


# --------------------------------------------------------------------------------------------------
# the window
# --------------------------------------------------------------------------------------------------


def test_app_drop_loads_image_and_right_view_matches_core(qtbot, tiny_model, window, photo):
    assert window.panel.model is not None and window.panel.model.spec == "tiny"
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        _drop(window, photo)
    _wait_right_done(qtbot, window)
    _wait_idle(qtbot, window)
    assert window.stack.currentIndex() == 1
    assert window.windowTitle().startswith("photo.png")

    picture = read_image(photo)
    model = registry.load_model(str(tiny_model), 2).model
    # The view is fitted, so the whole image is "visible" and tiles go centre-out. The order matters at
    # the float32-rounding level (overlaps are sums), so the reference uses the same order.
    region = VisibleRegion()
    region.set((0.0, 0.0, 200.0, 150.0))
    expected = to_uint8(
        upscale_array(
            model, picture.rgb, tile=INTERACTIVE_CPU_TILE, overlap=16, device="cpu", priority=make_priority(region)
        )
    )
    shown = window.right_image.base.levels[0]
    assert shown.shape == (300, 400, 3)
    np.testing.assert_array_equal(shown, expected)
    left = window.left_image
    assert left is not None and left.label == "Bicubic" and left.base.levels[0].shape == (300, 400, 3)
    assert window.size_label.text() == "200×150 → 400×300"
    assert "MLRN" in window.time_label.text() and "CPU" in window.device_label.text()


def test_app_tiles_arrive_visible_first_and_assemble_to_the_final_result(qtbot, home, tiny_model):
    """The blocks a render job sends, pasted in order, give exactly its final image (no half-blended seams)."""
    src = _photo(home / "big.png", 300, 260)
    picture = read_image(src)
    lr = Pyramid.build(to_uint8(picture.rgb))
    image_id = ImageId.of(src)
    key = RenderKey(image_id, "model:tiny", 2, 64, 16, "cpu")
    visible = VisibleRegion()
    visible.set((200.0, 180.0, 300.0, 260.0))  # bottom-right corner on screen
    request = RenderRequest(
        src,
        image_id,
        2,
        (RenderSpec(key, "model", "MLRN tiny", str(tiny_model)),),
        tile=64,
        picture=picture,
        lr=lr,
        visible=visible,
    )
    job = RenderJob(request)
    order: list[tuple[int, int, int, int]] = []
    results = []
    job.render_done.connect(results.append)
    job.tiles.connect(lambda _key, rects: order.extend(rects))
    job.run()  # on this thread: the job is a plain QObject until moved
    assert len(results) == 1
    # the reported rectangles tile the output exactly once
    covered = np.zeros((520, 600), np.int32)
    for x, y, w, h in order:
        covered[y : y + h, x : x + w] += 1
    assert (covered == 1).all()
    # and the canvas they were painted on is exactly the core's result and its pyramid
    model = registry.load_model(str(tiny_model), 2).model
    expected = to_uint8(
        upscale_array(model, picture.rgb, tile=64, overlap=16, device="cpu", priority=make_priority(visible))
    )
    np.testing.assert_array_equal(results[0].image, expected)
    built = Pyramid.build(expected)
    for a, b in zip(results[0].pyramid.levels, built.levels):
        np.testing.assert_array_equal(a, b)
    # the first block lies in the visible (bottom-right) corner
    x, y, _w, _h = order[0]
    assert x >= 2 * 150 and y >= 2 * 130


def test_app_first_model_tiles_come_before_the_full_bicubic_view(qtbot, home, tiny_model):
    """Opening a file: the LR placeholder, then the first MLRN tiles, then the bicubic view, then the rest."""
    src = _photo(home / "big.png", 300, 260)
    image_id = ImageId.of(src)
    bicubic = RenderSpec(RenderKey(image_id, "bicubic", 2), "bicubic", "Bicubic")
    key = RenderKey(image_id, "model:tiny", 2, 64, 16, "cpu")
    model = RenderSpec(key, "model", "MLRN tiny", str(tiny_model))
    visible = VisibleRegion()
    visible.set((0.0, 0.0, 300.0, 260.0))
    job = RenderJob(RenderRequest(src, image_id, 2, (bicubic, model), tile=64, visible=visible))
    events: list[str] = []
    results = {}
    job.loaded.connect(lambda _loaded: events.append("loaded"))
    job.tiles.connect(lambda k, _rects: events.append("tiles" if k == key else "other tiles"))
    job.render_done.connect(lambda r: (events.append(f"done {r.key.method}"), results.__setitem__(r.key.method, r)))
    job.render_failed.connect(lambda _k, msg: events.append(f"failed {msg}"))
    job.render_progress.connect(lambda k, done, _n: events.append("progress") if k == key and done == 1 else None)
    job.run()
    assert events[:3] == ["loaded", "tiles", "progress"], events  # the first tile shown and counted
    assert events.count("done bicubic") == 1 and events[-1] == "done model:tiny", events
    # the bicubic view comes right after the first tiles, not after the whole MLRN image
    assert "tiles" in events[events.index("done bicubic") :], events
    lr = to_uint8(read_image(src).rgb)
    np.testing.assert_array_equal(results["bicubic"].image, bicubic_uint8(lr, 2))


def test_app_plain_renders_alone_keep_their_order(qtbot, home):
    src = _photo(home / "small.png", 60, 40)
    image_id = ImageId.of(src)
    specs = tuple(RenderSpec(RenderKey(image_id, m, 2), m, m) for m in ("nearest", "bicubic"))
    job = RenderJob(RenderRequest(src, image_id, 2, specs))
    done: list[str] = []
    job.render_done.connect(lambda r: done.append(r.key.method))
    job.run()
    assert done == ["nearest", "bicubic"]


def test_app_zoom_and_pan_stay_in_sync(qtbot, tiny_model, window, photo):
    window.panel.select_left("tiny")  # same render on both sides: the two views must look identical
    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    _wait_idle(qtbot, window)
    assert window.left_image is window.right_image
    a, b = window.view_a, window.view_b
    assert a.size() == b.size()
    state = window.view_state

    centre = QPointF(a.width() * 0.3, a.height() * 0.6)
    for _ in range(3):
        wheel = QWheelEvent(
            centre,
            a.mapToGlobal(centre),
            QPoint(0, 0),
            QPoint(0, 120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(a, wheel)
    assert not state.fit and state.zoom > state.fit_zoom()
    qtbot.mousePress(b, Qt.MouseButton.LeftButton, pos=QPoint(200, 200))
    qtbot.mouseMove(b, QPoint(150, 170))
    qtbot.mouseRelease(b, Qt.MouseButton.LeftButton, pos=QPoint(150, 170))
    assert state.visible_rect(a.size()) == state.visible_rect(b.size())
    # below the captions the two views show the very same pixels
    img_a, img_b = a.grab().toImage(), b.grab().toImage()
    crop = (0, 60, a.width(), a.height() - 60)
    assert img_a.copy(*crop) == img_b.copy(*crop)

    window.set_zoom_percent(400)
    assert state.zoom == pytest.approx(4.0 / a.devicePixelRatioF())
    window.fit_action.trigger()
    assert state.fit


def test_app_flip_split_and_single_modes(qtbot, tiny_model, window, photo):
    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    left, right = window.left_image, window.right_image
    assert window.view_a.first is left and window.view_b.first is right
    window.flip_action.trigger()
    assert window.view_a.first is right and window.view_b.first is left
    window.flip_action.trigger()

    window.mode_actions["split"].trigger()
    assert window.view_b.isHidden() and window.view_a.first is left and window.view_a.second is right
    v = window.view_a
    x = round(v.divider_x())
    qtbot.mousePress(v, Qt.MouseButton.LeftButton, pos=QPoint(x, v.height() // 2))
    qtbot.mouseMove(v, QPoint(v.width() // 4, v.height() // 2))
    qtbot.mouseRelease(v, Qt.MouseButton.LeftButton, pos=QPoint(v.width() // 4, v.height() // 2))
    assert v.divider == pytest.approx(0.25, abs=0.02)

    window.mode_actions["single"].trigger()
    assert window.view_a.first is right and window.view_a.second is None
    window.flip_action.trigger()
    assert window.view_a.first is left


def test_app_left_view_can_show_another_model(qtbot, tiny_model, window, photo, home):
    other = _tiny_model_file(home / "finetuned.pt", seed=5)
    registry.register_user_model(other, "finetuned", "# finetuned\n")
    window._refresh_models()
    assert window.panel.select_left("finetuned")
    window.open_paths([photo])
    qtbot.waitUntil(
        lambda: window.left_image is not None and not window.left_image.pending and window.left_image.base is not None,
        timeout=RENDER_TIMEOUT_MS,
    )
    _wait_right_done(qtbot, window)
    assert window.left_image.label == "MLRN finetuned"
    assert window.right_image.label == "MLRN tiny"
    assert not np.array_equal(window.left_image.base.levels[0], window.right_image.base.levels[0])


def test_app_cancel_stops_the_worker(qtbot, tiny_model, window, home):
    big = _photo(home / "big.png", 900, 700)
    window.panel.set_tile(128)
    window.open_paths([big])
    qtbot.waitUntil(
        lambda: window.right_image.overlay is not None and not window.right_image.done.isEmpty(),
        timeout=RENDER_TIMEOUT_MS,
    )
    window.cancel()
    _wait_idle(qtbot, window)
    right = window.right_image
    assert right.pending and "cancelled" in right.progress
    assert window.session.right_key not in window.cache
    # F5 continues
    window.render_action.trigger()
    assert window.busy
    window.cancel()
    _wait_idle(qtbot, window)


def test_app_close_during_work_exits_cleanly(qtbot, home, tiny_model, capfd):
    configure_torch_threads()
    big = _photo(home / "big.png", 900, 700)
    w = MainWindow()
    w.show()
    w.open_paths([big])
    qtbot.waitUntil(
        lambda: w.right_image.overlay is not None and not w.right_image.done.isEmpty(), timeout=RENDER_TIMEOUT_MS
    )
    assert w.session.runner.busy
    w.close()
    assert not w.session.runner.busy
    w.deleteLater()
    qtbot.wait(50)
    gc.collect()
    captured = capfd.readouterr()
    assert "QThread: Destroyed while thread is still running" not in captured.err + captured.out


def test_app_closed_window_starts_no_render(qtbot, tiny_model, window, photo, home, monkeypatch):
    """A models-folder change just before the window closes must not render in the closed window: the job would
    outlive the session's shutdown and the window's deletion would destroy its running QThread (Qt aborts)."""
    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    _wait_idle(qtbot, window)
    started: list[bool] = []
    window.session.busy_changed.connect(lambda busy: started.append(busy) if busy else None)
    window._on_watcher_directory_changed(str(paths.user_models_dir()))  # as QFileSystemWatcher reports it
    window.close()
    # by the time the folder check runs, the model list has changed: 'tiny' is another file now
    monkeypatch.setenv("MLRN_HOME", str(home / "elsewhere"))
    registry.register_user_model(_tiny_model_file(home / "retrained.pt", seed=3), "tiny", "# tiny\n")
    qtbot.wait(800)  # past the 400 ms the window waits for a folder to settle
    assert started == [] and not window.session.runner.busy


def test_app_no_weights_says_so_and_still_shows_bicubic(qtbot, window, photo):
    assert window.panel.model is None
    assert window.banner.isVisible()
    assert "No MLRN model for ×2" in window.banner.text and "bicubic only" in window.banner.text
    window.open_paths([photo])
    qtbot.waitUntil(
        lambda: window.left_image is not None and window.left_image.base is not None and not window.left_image.pending,
        timeout=RENDER_TIMEOUT_MS,
    )
    assert window.right_image.base is None and "No MLRN model for ×2" in window.right_image.message
    assert not window.save_result(window.paths[0].with_name("out.png"))
    assert "no MLRN model" in window.messages.current


def test_app_picks_up_a_model_saved_while_it_runs(qtbot, window, home):
    assert window.banner.isVisible() and "mlrn-x2.pt is missing" in window.banner.text
    registry.register_user_model(_tiny_model_file(home / "src.pt"), "fresh", "# fresh\n")  # e.g. by mlrn train
    window._on_watch_timer_timeout()  # what the watcher on the user models folder triggers
    assert window.panel.model is not None and window.panel.model.spec == "fresh"
    assert window.panel.model.kind == "user"
    assert not window.banner.isVisible()


def test_app_broken_and_unsupported_files_show_a_message(qtbot, tiny_model, window, home, photo):
    broken = home / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    notes = home / "notes.txt"
    notes.write_text("hello")
    _drop(window, notes)
    assert "notes.txt" in window.messages.current and "not a supported image type" in window.messages.current
    window.open_paths([broken])
    qtbot.waitUntil(lambda: any("broken.jpg" in e for e in window.messages.errors), timeout=RENDER_TIMEOUT_MS)
    _wait_idle(qtbot, window)
    assert "broken.jpg" in window.right_image.message
    # still usable
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        window.open_paths([photo])
    _wait_right_done(qtbot, window)


def test_app_bad_model_file_is_reported(qtbot, window, home):
    bad = home / "bad.pt"
    bad.write_bytes(b"not a model")
    assert not window.add_model_file(bad)
    assert "bad.pt" in window.messages.current


def test_app_opened_model_file_switches_scale(qtbot, window, photo, home):
    x3 = _tiny_model_file(home / "three.pt", scale=3)
    assert window.add_model_file(x3)
    assert window.panel.scale == 3 and window.panel.model.kind == "file"
    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    assert window.right_image.base.levels[0].shape == (450, 600, 3)


def test_app_event_loop_stays_responsive_during_a_real_mlrn_render(qtbot, home):
    configure_torch_threads()
    torch.manual_seed(0)
    registry.register_user_model(registry.save_model(home / "real.pt", MLRN(scale=2), info={}), "real", "# real\n")
    src = _photo(home / "latency.png", 320, 256)
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(w, interval=10)
    timer.timeout.connect(tick)
    with qtbot.waitSignal(w.image_shown, timeout=RENDER_TIMEOUT_MS):
        w.open_paths([src])
    last[0] = time.perf_counter()
    timer.start()
    _wait_right_done(qtbot, w)
    timer.stop()
    assert len(gaps) > 20
    # a render on the GUI thread would block it for seconds; 0.4 s leaves room for a loaded CI machine
    assert max(gaps) < 0.400, f"event loop blocked for {max(gaps) * 1000:.0f} ms"


def test_app_cache_makes_switching_back_instant(qtbot, tiny_model, window, photo):
    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    _wait_idle(qtbot, window)
    first = window.right_image.base
    window.panel.set_scale(3)  # no x3 model: bicubic only
    assert window.panel.model is None
    qtbot.waitUntil(lambda: not window.busy, timeout=RENDER_TIMEOUT_MS)
    window.panel.set_scale(2)
    assert window.panel.model is not None and window.panel.model.spec == "tiny"
    assert not window.right_image.pending and window.right_image.base is first
    assert not window.busy


def test_app_step_through_several_files(qtbot, tiny_model, window, home):
    a = _photo(home / "a.png", 120, 90, seed=2)
    b = _photo(home / "b.png", 100, 80, seed=3)
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        _drop(window, a, b)
    assert window.panel.image_list.count() == 2
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        window.next_action.trigger()
    assert window.current.path == b
    _wait_right_done(qtbot, window)
    assert window.right_image.base.levels[0].shape == (160, 200, 3)
    window.prev_action.trigger()
    assert window.index == 0


def test_app_save_result_waits_for_tiles_and_never_overwrites(qtbot, tiny_model, window, home):
    photo = _photo(home / "wide.png", 700, 500)
    assert not window.save_result(home / "early.png")
    assert "open a photo first" in window.messages.current
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        window.open_paths([photo])
    assert window.right_image.pending
    out = home / "out" / "photo_x2.png"
    # asked before the render is done: waits for the missing tiles, then saves
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        assert window.save_result(out)
        assert "when the upscale has finished" in window.messages.current
    saved = read_image(out)
    assert (saved.width, saved.height) == (1400, 1000)
    np.testing.assert_array_equal((saved.rgb * 255).round().astype(np.uint8), window.right_image.base.levels[0])

    assert not window.save_result(photo)
    assert "original" in window.messages.current
    assert read_image(photo).width == 700

    window.panel.format_combo.setCurrentIndex(window.panel.format_combo.findData("jpg"))
    window.panel.quality_spin.setValue(80)
    assert window.panel.quality_spin.isEnabled()
    jpg = home / "out" / "photo_x2"
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS) as blocker:
        assert window.save_result(jpg)
    assert blocker.args[0].endswith("photo_x2.jpg")


def test_app_save_carries_metadata_and_sixteen_bits(qtbot, tiny_model, window, home):
    import pyexiv2

    from tests import hostile_corpus as corpus
    from tests.fixtures_images import ARTIST, exif_bytes, srgb_icc_bytes

    jpg = home / "camera.jpg"
    Image.fromarray(to_uint8(read_image(_photo(home / "src.png", 120, 80)).rgb)).save(
        jpg, quality=95, exif=exif_bytes(), icc_profile=srgb_icc_bytes(), dpi=(300, 300)
    )
    meta = pyexiv2.ImageData(jpg.read_bytes())  # Lightroom's keywords, rating, copyright and IPTC
    meta.modify_xmp({"Xmp.dc.subject": corpus.KEYWORDS, "Xmp.xmp.Rating": corpus.RATING})
    meta.modify_iptc({"Iptc.Application2.Keywords": corpus.IPTC_KEYWORDS, "Iptc.Application2.Byline": ["Ada"]})
    jpg.write_bytes(meta.get_bytes())
    meta.close()
    window.open_paths([jpg])
    _wait_right_done(qtbot, window)
    out = home / "camera_x2.png"
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        window.save_result(out)
    saved = read_image(out)
    assert saved.icc_profile is not None and saved.icc_profile == read_image(jpg).icc_profile
    assert saved.dpi is not None and round(saved.dpi[0]) == 300
    exif = Image.open(out).getexif()
    assert exif.get(0x013B) == ARTIST
    xmp, iptc = corpus.read_xmp_iptc(out)
    assert xmp["Xmp.dc.subject"] == corpus.KEYWORDS and xmp["Xmp.xmp.Rating"] == corpus.RATING
    assert iptc == {"Iptc.Application2.Keywords": corpus.IPTC_KEYWORDS, "Iptc.Application2.Byline": ["Ada"]}

    deep = np.clip(np.linspace(0, 65535, 96 * 64 * 3), 0, 65535).astype(np.uint16).reshape(64, 96, 3)
    src16 = home / "deep.png"
    import cv2

    cv2.imwrite(str(src16), deep[:, :, ::-1])
    window.open_paths([src16])
    _wait_right_done(qtbot, window)
    assert window.panel.keep16_check.isEnabled() and window.panel.keep16_check.isChecked()
    out16 = home / "deep_x2.png"
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        window.save_result(out16)
    back = read_image(out16)
    assert back.bit_depth == 16 and (back.width, back.height) == (192, 128)
    # the uint16 result was kept: values between the 8-bit steps survive
    assert not np.allclose(back.rgb * 255, np.round(back.rgb * 255), atol=1e-3)


def test_app_save_asks_for_a_name(qtbot, tiny_model, window, photo, home, monkeypatch):
    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    target = home / "chosen.tif"
    calls = []

    def fake_dialog(*args, **kwargs):
        calls.append(args)
        return str(target), ""

    monkeypatch.setattr("app.save_flow.QFileDialog.getSaveFileName", fake_dialog)
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        window.save_action.trigger()
    assert calls and calls[0][2].endswith("photo_x2.png")  # the suffix Batch Export and mlrn upscale use
    assert target.exists()
    assert f"Saved '{target.name}' in {target.parent}" in window.messages.current  # Ctrl+S says it was done


def test_app_save_refuses_the_original_before_asking_to_replace_it(qtbot, tiny_model, window, photo, home, monkeypatch):
    """Choosing the opened photo in the save dialog is refused at once, in a message box, and the dialog opens
    again; an existing other file is replaced only when the user says yes."""
    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    existing = home / "existing.png"
    existing.write_bytes(b"keep me")
    answers = iter([str(photo), str(existing), str(existing), str(home / "new.png")])
    starts, warnings, questions = [], [], []

    def fake_dialog(_parent, _title, start, *args):
        starts.append(start)
        assert QFileDialog.Option.DontConfirmOverwrite in args  # Qt must not ask first: we refuse or ask
        return next(answers), ""

    def fake_question(_parent, _title, text, *a):
        questions.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr("app.save_flow.QFileDialog.getSaveFileName", fake_dialog)
    monkeypatch.setattr("app.save_flow.QMessageBox.warning", lambda _p, _t, text, *a: warnings.append(text))
    monkeypatch.setattr("app.save_flow.QMessageBox.question", fake_question)
    original = photo.read_bytes()
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        window.save_action.trigger()
    assert len(warnings) == 1 and "is the photo you opened" in warnings[0]  # refused, never asked to replace
    assert len(questions) == 2 and all("existing.png' already exists" in q for q in questions)  # said no twice
    assert starts[1] == str(photo) and starts[2] == str(existing)  # the dialog reopens at the refused name
    assert photo.read_bytes() == original and existing.read_bytes() == b"keep me"
    assert (home / "new.png").exists()


def test_app_settings_are_kept_between_runs(qtbot, home, tiny_model, photo):
    configure_torch_threads()
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.open_paths([photo])
    qtbot.waitUntil(lambda: w.current is not None, timeout=RENDER_TIMEOUT_MS)
    registry.register_user_model(_tiny_model_file(home / "ft.pt", seed=3), "finetuned", "# finetuned\n")
    w._refresh_models()
    assert w.panel.select_model("finetuned")
    w.panel.set_tile(256)
    w._apply_mode("split")
    w.close()
    data = json.loads(settings_path().read_text())
    assert settings_path().is_relative_to(home / "home")
    assert data["tile"] == 256 and data["compare_mode"] == "split" and data["model"] == "finetuned"
    assert data["recent_files"][0] == str(photo)

    w2 = MainWindow()
    qtbot.addWidget(w2)
    assert w2.panel.tile == 256 and w2.mode == "split" and w2.panel.model.spec == "finetuned"
    assert w2.recent_menu.actions()[0].text() == "photo.png"


def test_app_folder_drop_offers_batch_export(qtbot, tiny_model, window, home, monkeypatch):
    folder = home / "shoot"
    folder.mkdir()
    _photo(folder / "one.png", 64, 48)
    _photo(folder / "two.png", 64, 48, seed=4)
    opened = []

    class FakeBatchDialog(QDialog):
        def __init__(self, inputs=None, parent=None, scale=2, model=None, quality="normal", raw_colour="srgb"):
            super().__init__(parent)
            opened.append((inputs, scale, model, quality, raw_colour))

    monkeypatch.setitem(sys.modules, "app.batch_dialog", types.SimpleNamespace(BatchExportDialog=FakeBatchDialog))
    _drop(window, folder)
    assert opened == [([folder], 2, "tiny", "normal", "srgb")]
    window._batch_dialog.close()
    assert window.paths == []  # the folder went to batch export, not into the compare view


def test_app_main_opens_files_from_the_command_line(qtbot, home, tiny_model, photo):
    from app.main import main

    shown = []

    def poll() -> None:
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.current is not None:
                shown.append(widget.current.path)
                widget.close()
                return
        QTimer.singleShot(50, poll)

    QTimer.singleShot(50, poll)
    QTimer.singleShot(30_000, QApplication.quit)  # safety net
    assert main([str(photo)]) == 0
    assert shown == [photo]


# --------------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------------


def test_app_priority_puts_visible_tiles_first():
    region = VisibleRegion()
    tiles = plan_tiles(600, 800, 128, 16)
    priority = make_priority(region)
    assert min(tiles, key=priority).index == 0  # nothing on screen yet: grid order
    region.set((600.0, 450.0, 800.0, 600.0))
    first = min(tiles, key=priority)
    assert first.x1 > 600 and first.y1 > 450
    region.set((0.0, 0.0, 100.0, 100.0))  # the user pans while the render runs: the order follows at once
    first = min(tiles, key=priority)
    assert first.x0 < 100 and first.y0 < 100
    region.set((600.0, 450.0, 800.0, 600.0))
    assert min(tiles, key=priority).x1 > 600
    # the version the core re-sorts on follows the rectangle, and the default until there is one
    assert priority.version() == (600.0, 450.0, 800.0, 600.0)
    fitted = make_priority(VisibleRegion(), (0.0, 0.0, 800.0, 600.0))
    assert fitted.version() == (0.0, 0.0, 800.0, 600.0)


def test_app_pyramid_paste_matches_a_full_build():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (700, 530, 3), dtype=np.uint8)
    built = Pyramid.build(img)
    canvas = Pyramid.zeros(700, 530)
    for y in range(0, 700, 96):
        for x in range(0, 530, 80):
            canvas.paste(x, y, img[y : y + 96, x : x + 80])
    assert len(canvas.levels) == len(built.levels) == 3
    for a, b in zip(canvas.levels, built.levels):
        np.testing.assert_array_equal(a, b)
    assert built.level_for(1.0) == 0 and built.level_for(0.5) == 1 and built.level_for(0.01) == 2


def test_app_image_cache_is_bounded_by_bytes():
    def result(i: int) -> RenderResult:
        key = RenderKey(ImageId(f"/x{i}.png", 0, 0), "bicubic", 2)
        return RenderResult(key, "Bicubic", Pyramid([np.zeros((100, 100, 3), np.uint8)]))

    cache = ImageCache(budget_bytes=3 * 30_000 + 10)
    items = [result(i) for i in range(5)]
    for r in items[:3]:
        cache.put(r)
    assert cache.get(items[0].key) is items[0]  # now most recent
    cache.put(items[3])
    assert items[1].key not in cache and items[0].key in cache and len(cache) == 3
    assert cache.nbytes == 90_000
    huge = RenderResult(RenderKey(ImageId("/h", 0, 0), "bicubic", 2), "B", Pyramid([np.zeros((200, 200, 3), np.uint8)]))
    cache.put(huge)
    assert huge.key not in cache and len(cache) == 3


def test_app_settings_ignore_bad_values(home):
    path = settings_path()
    path.write_text(
        json.dumps(
            {"scale": 5, "tile": 256, "compare_mode": "weird", "recent_files": "nope", "quality": 80, "unknown": 1}
        )
    )
    s = load_settings()
    assert s.scale == 2 and s.tile == 256 and s.compare_mode == "side" and s.recent_files == [] and s.quality == 80
    path.write_text(json.dumps({"upscale_quality": "ultra"}))
    assert load_settings().upscale_quality == "normal"
    path.write_text(json.dumps({"upscale_quality": "best"}))
    assert load_settings().upscale_quality == "best"
    path.write_text("{ broken")
    assert load_settings() == Settings()
    s = Settings()
    for i in range(15):
        s.add_recent(home / f"{i}.png")
    save_settings(s)
    again = load_settings()
    assert len(again.recent_files) == 10 and again.recent_files[0].endswith("14.png")


def test_app_view_state_zooms_about_the_cursor():
    state = ViewState()
    state.set_viewport(QSize(400, 300))
    state.set_image_size(800, 600)
    assert state.fit and state.zoom == pytest.approx(0.5)
    anchor = QPointF(100, 75)  # output pixel (200, 150)
    state.set_zoom(2.0, anchor)
    ox, oy = state.origin()
    assert (anchor.x() - ox) / state.zoom == pytest.approx(200, abs=1)
    assert (anchor.y() - oy) / state.zoom == pytest.approx(150, abs=1)
    state.set_image_size(1200, 900)  # x2 -> x3: same part of the picture stays on screen
    assert state.zoom == pytest.approx(2.0 / 1.5)


def test_app_switching_images_does_not_reload_the_model(home, tiny_model, monkeypatch):
    """Issue 15: the prepared model stays across render jobs; only a new model, scale or precision loads."""
    from app import worker

    cache = worker.ModelCache()
    monkeypatch.setattr(worker, "MODELS", cache)
    loads = []
    real = worker.load_model
    monkeypatch.setattr(worker, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))

    def render(path, precision="auto"):
        return _render_model(path, tiny_model, precision)

    photos = [_photo(home / f"p{i}.png", 90, 70) for i in range(3)]
    for p in photos + photos[:1]:
        render(p)
    assert len(loads) == 1 and cache.loads == 1
    exact = render(photos[0], "fp32")
    assert len(loads) == 2 and exact.info["precision"] == "fp32"
    render(photos[1], "fp32")
    assert len(loads) == 2
    os.utime(tiny_model, ns=(0, 1))  # a replaced model file is read again
    render(photos[1], "fp32")
    assert len(loads) == 3


def test_app_display_conversion_rounds_exactly_as_the_writer():
    from mlrn_core.imageio import _float_to_int

    rng = np.random.default_rng(3)
    x = rng.random((37, 53, 3), dtype=np.float32)
    x[0, :8, 0] = [0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255, 1.0, 0.0, 1e-9, 0.999999]
    np.testing.assert_array_equal(to_uint8(x), _float_to_int(x, np.uint8))  # the fast one-pass path
    y = x.copy()
    y[1, 1] = [-0.2, 1.7, np.nan]  # the banded path: negative, above 1, NaN
    np.testing.assert_array_equal(to_uint8(y), _float_to_int(y, np.uint8))
    deep = (x * 65535).astype(np.uint16)
    np.testing.assert_array_equal(to_uint8(deep), _float_to_int(deep.astype(np.float32) / 65535, np.uint8))


def test_app_save_never_replaces_a_file_that_appears_while_saving(qtbot, tiny_model, window, photo, home, monkeypatch):
    from mlrn_core import imageio

    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    target = home / "race.png"
    real = imageio._ENCODERS["png"]

    def another_program_saves_first(fp, job):
        target.write_bytes(b"saved by another program meanwhile")
        real(fp, job)

    monkeypatch.setitem(imageio._ENCODERS, "png", another_program_saves_first)
    assert window.save_result(target)  # the name was free when Save was asked for
    qtbot.waitUntil(lambda: any("race.png" in e for e in window.messages.errors), timeout=RENDER_TIMEOUT_MS)
    assert "already exists (it was not replaced)" in window.messages.errors[-1]
    assert target.read_bytes() == b"saved by another program meanwhile"
    assert not [p for p in home.iterdir() if p.name.endswith(".part")]
    # a file the user chose to replace (the save dialog asked) is replaced
    monkeypatch.setitem(imageio._ENCODERS, "png", real)
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        assert window.save_result(target)
    assert read_image(target).width == 2 * read_image(photo).width


def test_app_save_checks_the_folder_before_waiting_for_the_render(qtbot, tiny_model, window, photo, home, monkeypatch):
    import os

    window.open_paths([photo])
    _wait_right_done(qtbot, window)
    locked = home / "locked"
    locked.mkdir()
    real_open = os.open

    def read_only_folder(path, flags, mode=0o777, **kw):  # as a read-only folder answers (root ignores chmod)
        if Path(path).parent == locked and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", read_only_folder)
    assert not window.save_result(locked / "out.png")
    assert f"output folder '{locked}'" in window.messages.current
    assert "not writable; choose another output folder" in window.messages.current
    assert list(locked.iterdir()) == []


def test_app_best_quality_renders_the_self_ensemble_and_is_kept(qtbot, home, window):
    """Issue 36: Quality "Best" in the panel renders (and saves) the 8-way self-ensemble, says so in the
    caption, is remembered, and Batch Export opens with it."""
    photo = _photo(home / "small.png", 96, 72)  # one tile: 8 passes stay quick on a busy machine
    model_path = _tiny_model_file(home / "rough.pt", seed=5)
    registry.register_user_model(model_path, "rough", "# rough\n")
    window._refresh_models()
    assert window.panel.select_model("rough")
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        _drop(window, photo)
    _wait_right_done(qtbot, window)
    _wait_idle(qtbot, window)
    normal = window.right_image.base.levels[0].copy()
    assert "best" not in window.right_image.label
    combo = window.panel.quality_combo
    assert combo.currentData() == "normal" and combo.itemText(combo.findData("best")).startswith("Best (")
    assert combo.itemText(combo.findData("best")) == quality_label("best", 2)
    assert "8 times, flipped and rotated" in combo.toolTip()
    combo.setCurrentIndex(combo.findData("best"))
    qtbot.waitUntil(lambda: window.session.right_key is not None and window.session.right_key.ensemble, timeout=5000)
    _wait_right_done(qtbot, window)
    _wait_idle(qtbot, window)
    best = window.right_image.base.levels[0]
    assert window.right_image.label.endswith("best quality")
    model = registry.load_model(str(model_path), 2).model
    rgb = read_image(photo).rgb
    expected = to_uint8(upscale_array(model, rgb, tile=INTERACTIVE_CPU_TILE, device="cpu", ensemble=True))
    plain = to_uint8(upscale_array(model, rgb, tile=INTERACTIVE_CPU_TILE, device="cpu"))
    assert np.abs(best.astype(int) - expected).max() <= 1  # blending order differs only in float rounding
    assert np.abs(normal.astype(int) - plain).max() <= 1
    assert np.abs(best.astype(int) - normal).max() > 3
    out = home / "out" / "best.png"
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        assert window.save_result(out)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), best)
    assert window.open_batch_export([photo])
    dialog = window._batch_dialog
    assert dialog.upscale_quality_combo.currentData() == "best" and dialog.options().ensemble
    dialog.close()
    window.close()
    assert json.loads(settings_path().read_text())["upscale_quality"] == "best"
    w2 = MainWindow()
    qtbot.addWidget(w2)
    assert w2.panel.quality == "best"


@pytest.mark.parametrize("geometry", ["AdnQywADAAAAAAé", "\u2603" * 5, "not base64!"])
def test_app_starts_whatever_geometry_the_settings_file_holds(qtbot, home, geometry):
    """Issue 33, item 5: a non-ASCII geometry string stopped the app at every start."""
    settings_path().write_text(json.dumps({"geometry": geometry, "scale": 3}), encoding="utf-8")
    assert load_settings().geometry == "" and load_settings().scale == 3  # that key dropped, the rest kept
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    assert w.width() > 200 and w.panel.scale == 3


def test_mlrn_home_naming_a_file_gets_one_sentence_from_the_app_and_the_cli(tmp_path, monkeypatch, capsys):
    """Issue 33, item 5: tracebacks from the first folder made under it."""
    from app.main import main as app_main
    from mlrn_core.cli import main as cli_main

    afile = tmp_path / "home.txt"
    afile.write_text("not a folder")
    monkeypatch.setenv("MLRN_HOME", str(afile))
    assert cli_main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mlrn: MLRN_HOME is ") and "which is a file, not a folder" in err and "Traceback" not in err
    assert app_main([]) == 2
    err = capsys.readouterr().err
    assert "MLRN Studio cannot start: MLRN_HOME is " in err and str(afile) in err
    assert afile.read_text() == "not a folder"
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "new" / "home"))  # a missing folder is made
    assert paths.home_problem() is None and (tmp_path / "new" / "home" / "config").is_dir()


@pytest.mark.builtin_models
def test_app_render_of_thin_pictures_keeps_their_colours_as_the_batch_does(home):
    """Issue 33, item 6: 1x1 and 1xN pictures shifted colour in the app (the padding was the batch's only)."""
    from tests import hostile_corpus as corpus

    model = Path(__file__).resolve().parents[1] / "resources" / "models" / "mlrn-x2.pt"
    for h, w in ((1, 40), (40, 1), (1, 1), (2, 40)):
        path = corpus.thin_png(home / f"t{h}x{w}.png", h, w)
        shown = _render_model(path, model, "fp32").pyramid.levels[0].astype(int)
        assert shown.shape == (2 * h, 2 * w, 3)
        assert np.abs(shown - np.array([204, 77, 26])).max() <= 3, (h, w, shown.reshape(-1, 3).mean(0))


def test_app_progress_bar_counts_tiles_with_percent_and_eta_to_the_end(qtbot, tiny_model, window, home, monkeypatch):
    """Issue 34, item 1: the bar stayed a busy stripe once the bicubic view started beside the MLRN render
    (its 0-tile start took the bar over); it follows the tiled render to its end, in the CLI's words."""
    from mlrn_core import tiling

    real = tiling.TileRunner.run
    monkeypatch.setattr(tiling.TileRunner, "run", lambda self, lr: (time.sleep(0.03), real(self, lr))[1])
    window.panel.set_tile(128)
    window.settings.tile = 128
    photo = _photo(home / "wide.png", 700, 500)
    shown = []
    window.session.progress.connect(lambda p: shown.append((p.value, p.maximum, p.text)))
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        window.open_paths([photo])
    _wait_right_done(qtbot, window)
    _wait_idle(qtbot, window)
    total = len(plan_tiles(500, 700, 128, 16))
    counted = [s for s in shown if s[1] == total]
    first = shown.index(counted[0])
    assert all(m == total for _v, m, _t in shown[first:]), shown  # no busy (0, 0) after the count began
    values = [v for v, _m, _t in counted]
    assert values == sorted(values) and values[-1] == total and len(set(values)) > total // 2
    assert counted[-1][2] == f"{total}/{total} tiles · 100% · eta 00:00"
    assert re.fullmatch(rf"\d+/{total} tiles · \d+% · eta \d\d:\d\d", counted[len(counted) // 2][2])
    assert window.progress.maximum() == total and window.progress.value() == total


def _patchy_photo(path: Path, w: int, h: int, box: tuple[int, int, int, int], seed: int = 3) -> Path:
    """A flat grey picture with one textured rectangle (x0, y0, x1, y1): the detail is there."""
    img = np.full((h, w, 3), 120, np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = np.random.default_rng(seed).integers(0, 256, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    Image.fromarray(img).save(path)
    return path


def test_app_detail_focus_finds_the_textured_part():
    from app.render import detail_focus

    img = np.full((400, 600, 3), 90, np.uint8)
    img[40:140, 420:560] = np.random.default_rng(0).integers(0, 256, (100, 140, 3), dtype=np.uint8)
    fx, fy = detail_focus(Pyramid.build(img).levels)
    assert 420 / 600 <= fx <= 560 / 600 and 40 / 400 <= fy <= 140 / 400
    assert detail_focus(Pyramid.build(np.full((300, 300, 3), 50, np.uint8)).levels) == pytest.approx(
        (0.5, 0.5), abs=0.02
    )


def test_app_first_view_is_100_percent_on_the_detail_and_fit_is_one_key_away(qtbot, tiny_model, window, home):
    """Issue 34, item 2: a photo opened at 'Fit 18%', where bicubic and MLRN look alike."""
    big = _patchy_photo(home / "big.png", 900, 700, (650, 80, 850, 260))  # detail top right; x2: 1800x1400
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        window.open_paths([big])
    state = window.view_state
    qtbot.waitUntil(lambda: state.image_w == 1800, timeout=RENDER_TIMEOUT_MS)
    assert not state.fit and state.zoom == pytest.approx(1.0)
    assert 1300 <= state.cx <= 1700 and 160 <= state.cy <= 520  # on the textured part (output pixels)
    assert "100%" in window.zoom_label.text()
    window.fit_action.trigger()  # Ctrl+0
    assert state.fit and state.zoom < 0.5
    _wait_idle(qtbot, window)
    # another photo of the same size keeps the view the user chose
    state.set_zoom(2.0)
    state.center_on(400, 300)
    other = _patchy_photo(home / "other.png", 900, 700, (20, 500, 200, 690), seed=4)
    window.open_paths([other])
    qtbot.waitUntil(lambda: window.current is not None and window.current.path == other, timeout=RENDER_TIMEOUT_MS)
    assert state.zoom == pytest.approx(2.0) and (state.cx, state.cy) == pytest.approx((400, 300))
    # a photo that fits at 100% is shown whole
    small = _photo(home / "small.png", 120, 90)
    window.open_paths([small])
    qtbot.waitUntil(lambda: state.image_w == 240, timeout=RENDER_TIMEOUT_MS)
    assert state.fit
    _wait_idle(qtbot, window)


def test_app_opens_a_raw_file_shows_its_preview_first_and_saves_a_16_bit_tiff(
    qtbot, tiny_model, window, home, monkeypatch
):
    from tests import rawfiles

    dng = rawfiles.make_dng(home / "IMG_0100.DNG", h=128, w=192, orientation=6)
    events = []
    window.session.preview_ready.connect(lambda w, h: events.append(("preview", w, h)))
    window.session.image_shown.connect(lambda path: events.append(("developed", Path(path).name)))
    _drop(window, dng)
    _wait_right_done(qtbot, window)
    # the camera's preview came first, at the size of the upright development (x2 of 128 x 192 portrait)
    assert events[:2] == [("preview", 256, 384), ("developed", "IMG_0100.DNG")]
    assert (window.view_state.image_w, window.view_state.image_h) == (256, 384)
    assert "16-bit RAW" in window.status_fields.size_label.toolTip() + window.status_fields.size_label.text()
    calls = []

    def fake_dialog(*args, **kwargs):
        calls.append(args)
        return args[2], ""  # the name the dialog proposes

    monkeypatch.setattr("app.save_flow.QFileDialog.getSaveFileName", fake_dialog)
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        window.save_action.trigger()
    out = Path(calls[0][2])
    assert out.name == "IMG_0100_x2.tif"  # "same format" for a RAW file is a 16-bit TIFF
    saved = read_image(out)
    assert saved.bit_depth == 16 and (saved.width, saved.height) == (256, 384) and saved.icc_profile
    assert Image.open(out).getexif().get(272) == rawfiles.CAMERA_MODEL
    # File > RAW Colour Space > ProPhoto RGB: the RAW file on screen develops again, and Save carries that profile
    with qtbot.waitSignal(window.session.image_shown, timeout=RENDER_TIMEOUT_MS):
        window.raw_colour_actions["prophoto"].trigger()
    _wait_right_done(qtbot, window)
    assert window.settings.raw_colour == "prophoto"
    wide = home / "IMG_0100_prophoto.tif"
    with qtbot.waitSignal(window.saved, timeout=RENDER_TIMEOUT_MS):
        window.save_result(wide)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(read_image(wide).icc_profile))
    assert "ProPhoto" in ImageCms.getProfileDescription(profile)
    dialog_opened = window.open_batch_export([dng])
    assert dialog_opened and window._batch_dialog.options().raw_colour == "prophoto"
    window._batch_dialog.close()


def test_app_says_before_opening_a_picture_that_needs_more_memory_than_is_free(
    qtbot, tiny_model, window, home, photo, monkeypatch
):
    """Issue 33 item 6: the app opened a 400 MP gray PNG and peaked at 7.1 GB with no word. With little free
    memory, a 2000 x 2000 picture is not read at all, the views and the list say why, and a small one opens."""
    from mlrn_core import memory

    big = home / "big.png"
    Image.fromarray(np.zeros((2000, 2000), np.uint8)).save(big)
    started = []
    with monkeypatch.context() as m:
        m.setattr(memory, "available_bytes", lambda: 200 << 20)
        m.setattr(window.session, "_start_render_job", lambda request: started.append(request))
        window.open_paths([big])
    assert started == []
    assert "Not opened: 'big.png': upscaling this 2000 x 2000 picture x2 needs about" in window.messages.current
    assert "GB are free" in window.right_image.message
    with qtbot.waitSignal(window.image_shown, timeout=RENDER_TIMEOUT_MS):
        window.open_paths([photo])
    _wait_right_done(qtbot, window)
