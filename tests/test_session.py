"""The render session on its own, without a window: what it renders, when it saves, what it refuses.

The session is driven through its public calls and waited on through its signals, as the window does.
Models are tiny (8 features, 1 block) and images small, so every render takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.render import to_uint8
from app.session import ModelRef, RenderSession, RenderSettings
from mlrn_core import registry
from mlrn_core.batch import BatchOptions, plan_batch, run_batch
from mlrn_core.imageio import read_image
from mlrn_core.model import MLRN
from mlrn_core.tiling import upscale_array
from tests.helpers import textured_image

TIMEOUT_MS = 60_000


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    torch.manual_seed(5)  # a random tiny network tints gray input: the gray tests rely on it
    return registry.save_model(tmp_path / "tiny.pt", MLRN(scale=2, features=8, blocks=1), info={})


@pytest.fixture
def session(qtbot) -> RenderSession:
    s = RenderSession(256 * 2**20)
    yield s
    s.shutdown()
    qtbot.waitUntil(lambda: not s.runner.busy, timeout=TIMEOUT_MS)  # a save may still be finishing


def _settings(model_file: Path, **kw) -> RenderSettings:
    return RenderSettings(scale=2, model=ModelRef(model_file, "tiny"), device="cpu", **kw)


def _photo(path: Path, gray: bool = False, seed: int = 0, size: tuple[int, int] = (60, 80)) -> Path:
    img = Image.fromarray(textured_image(*size, seed=seed))
    (img.convert("L") if gray else img).save(path)
    return path


def _open(qtbot, session: RenderSession, settings: RenderSettings, *files: Path) -> None:
    session.set_paths(list(files))
    with qtbot.waitSignal(session.image_shown, timeout=TIMEOUT_MS):
        assert session.show(0, settings)


def test_session_renders_both_sides_and_the_right_one_matches_the_core(qtbot, tmp_path, session, model_file):
    photo = _photo(tmp_path / "p.png")
    settings = _settings(model_file)
    finished: list = []
    session.render_finished.connect(finished.append)
    _open(qtbot, session, settings, photo)
    qtbot.waitUntil(lambda: not session.busy, timeout=TIMEOUT_MS)

    assert {k.method for k in finished} == {"bicubic", session.right_key.method}
    assert session.left_image.label == "Bicubic" and not session.left_image.pending
    right = session.right_image
    assert right.label == "MLRN tiny" and not right.pending and right.overlay is None
    net = registry.load_model(str(model_file), 2).model
    expected = to_uint8(upscale_array(net, read_image(photo).rgb, tile=128, device="cpu"))
    assert np.abs(right.base.levels[0].astype(int) - expected.astype(int)).max() <= 1

    # asking again with the same settings is answered from the cache: no job
    session.request(settings)
    assert not session.busy and not session.right_image.pending


def test_session_without_a_model_shows_bicubic_and_refuses_to_save(qtbot, tmp_path, session):
    photo = _photo(tmp_path / "p.png")
    errors: list[str] = []
    session.error.connect(errors.append)
    _open(qtbot, session, RenderSettings(scale=3, device="cpu"), photo)
    qtbot.waitUntil(lambda: not session.busy, timeout=TIMEOUT_MS)
    assert session.right_key is None and "No MLRN model for ×3" in session.right_image.message
    assert session.left_image.base.levels[0].shape == (180, 240, 3)
    assert not session.save(tmp_path / "out.png", "png", None, 8)
    assert "no MLRN model for ×3" in errors[-1]


def test_session_saves_once_the_render_is_done_and_never_over_the_original(qtbot, tmp_path, session, model_file):
    photo = _photo(tmp_path / "p.png")
    _open(qtbot, session, _settings(model_file), photo)
    errors: list[str] = []
    session.error.connect(errors.append)
    assert not session.save(photo, "png", None, 8)
    assert "is the original photo" in errors[-1]

    target = tmp_path / "out.png"
    with qtbot.waitSignal(session.saved, timeout=TIMEOUT_MS) as saved:
        assert session.save(target, "png", None, 8)  # now, or once the render has finished
    assert saved.args == [str(target)] and session.pending_save is None
    with Image.open(target) as im:
        assert im.size == (160, 120) and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), session.right_image.base.levels[0])


def test_session_drops_a_waiting_save_on_cancel_and_on_another_image(qtbot, tmp_path, session, model_file):
    a, b = _photo(tmp_path / "a.png", size=(400, 500)), _photo(tmp_path / "b.png", seed=1)
    settings = _settings(model_file, tile=32)  # hundreds of tiles: the render still runs when we save
    infos: list[str] = []
    session.info.connect(lambda text, _ms: infos.append(text))
    _open(qtbot, session, settings, a, b)
    assert session.busy and session.save(tmp_path / "a_out.png", "png", None, 8)
    assert session.pending_save == tmp_path / "a_out.png"
    session.cancel()
    assert session.pending_save is None and infos[-1] == "Upscale cancelled; the result was not saved"
    qtbot.waitUntil(lambda: not session.busy, timeout=TIMEOUT_MS)
    assert session.right_image.pending and "cancelled" in session.right_image.progress

    session.request()  # F5: continue
    assert session.busy and session.save(tmp_path / "a_out.png", "png", None, 8)
    session.show(1)
    assert session.pending_save is None
    assert any("was for another image or setting" in t for t in infos)
    qtbot.waitUntil(lambda: not session.busy and not session.right_image.pending, timeout=TIMEOUT_MS)
    assert not (tmp_path / "a_out.png").exists()


@pytest.mark.parametrize("bits", [8, 16])
def test_session_saves_a_gray_photo_gray_exactly_as_batch_does(qtbot, tmp_path, session, model_file, bits):
    photo = _photo(tmp_path / "g.png", gray=True)
    if bits == 16:  # 16-bit sources are saved from the float result, 8-bit ones from the display pixels
        gray16 = np.asarray(Image.open(photo)).astype(np.uint16) * 257
        Image.fromarray(gray16).save(photo)
        assert read_image(photo).bit_depth == 16
    net = registry.load_model(str(model_file), 2).model
    tinted = upscale_array(net, read_image(photo).rgb, tile=128, device="cpu")
    assert float(np.max(tinted.max(axis=2) - tinted.min(axis=2))) > 2 / 255  # the network does tint it

    options = BatchOptions(scale=2, device="cpu", tile=128, sidecar=False, prefetch=False)
    run_batch(plan_batch([photo], tmp_path / "batch", options), options, registry.load_model(str(model_file), 2))
    _open(qtbot, session, _settings(model_file, tile=128), photo)
    qtbot.waitUntil(lambda: not session.busy, timeout=TIMEOUT_MS)
    shown = session.right_image.base.levels[0]
    assert (shown[..., 0] == shown[..., 1]).all() and (shown[..., 1] == shown[..., 2]).all()  # shown gray too
    with qtbot.waitSignal(session.saved, timeout=TIMEOUT_MS):
        session.save(tmp_path / "app.png", "png", None, bits)

    with Image.open(tmp_path / "app.png") as app_im, Image.open(tmp_path / "batch" / "g_x2.png") as batch_im:
        assert app_im.mode == batch_im.mode == ("L" if bits == 8 else "I;16")
        np.testing.assert_array_equal(np.asarray(app_im), np.asarray(batch_im))


def test_a_save_after_a_cancel_restarts_the_upscale_without_the_stale_cancel_note(qtbot, tmp_path, session, model_file):
    a = _photo(tmp_path / "a.png", size=(400, 500))
    infos: list[str] = []
    session.info.connect(lambda text, _ms: infos.append(text))
    _open(qtbot, session, _settings(model_file, tile=32), a)
    session.cancel()
    qtbot.waitUntil(lambda: not session.busy, timeout=TIMEOUT_MS)
    assert "cancelled" in session.right_image.progress
    assert session.save(tmp_path / "a_out.png", "png", None, 8)  # Save on a cancelled upscale restarts it
    assert session.busy and infos[-1].startswith("Will save 'a_out.png' when the upscale has finished")
    assert "cancelled" not in infos[-1] and "F5" not in infos[-1]
    qtbot.waitUntil(lambda: (tmp_path / "a_out.png").exists(), timeout=TIMEOUT_MS)


def test_the_views_tile_count_is_repainted_with_the_status_bars(qtbot, tmp_path, session, model_file):
    """A tile's pixels arrive (and repaint) just before its count: the count must repaint the view too, or its
    caption stays one tile behind the status bar's until the next tile arrives."""
    a = _photo(tmp_path / "a.png", size=(160, 200))
    _open(qtbot, session, _settings(model_file, tile=32), a)
    session.cancel()
    qtbot.waitUntil(lambda: not session.busy, timeout=TIMEOUT_MS)
    assert session.right_image.pending
    painted: list[str] = []
    session.repaint.connect(lambda: painted.append(session.right_image.progress))
    session._on_job_render_progress(session.right_key, 5, 12)  # the job's signal, as it arrives after a tile
    session.repaint.disconnect()
    assert painted == ["5/12 tiles"]


def test_a_shut_down_session_starts_no_job(qtbot, tmp_path, session, model_file):
    """After shutdown nothing waits for a job's thread: a request or save that still arrives (a closed window's
    timer, a queued signal) must start none, or the thread is destroyed running and Qt aborts the process."""
    a = _photo(tmp_path / "a.png")
    _open(qtbot, session, _settings(model_file, tile=32), a)
    session.shutdown()
    assert not session.busy and not session.runner.busy
    errors: list[str] = []
    session.error.connect(errors.append)
    session.request(_settings(model_file, tile=64))  # settings that need a new render
    assert not session.busy and not session.runner.busy
    assert not session.save(tmp_path / "a_out.png", "png", None, 8)
    assert not session.runner.busy and "closing" in errors[-1]
