"""The camera degradation (seeded, each part switchable), area-weighted sampling, the validation split and
``mlrn bench --degrade``."""

import json

import numpy as np
import pytest

from mlrn_core.data import CAMERA, Degradation, PatchSampler, jpeg_roundtrip, load_pairs
from mlrn_core.evaluate import parse_degradation
from mlrn_core.metrics import degrade, psnr_y, rgb_to_y
from mlrn_core.trainer import TrainConfig, Trainer, ValidationEvent
from release import validation
from tests.helpers import textured_image, write_png_folder


@pytest.fixture
def hr():
    return textured_image(96, 128, seed=3)


def _rng(seed=5):
    return np.random.default_rng(seed)


def test_default_is_the_clean_protocol(hr):
    d = Degradation()
    assert not d.active and not d.needs_hr
    assert np.array_equal(d.make_lr(hr, None, 2, _rng()), degrade(hr, 2))
    assert d.describe() == "clean MATLAB bicubic"


def test_same_seed_same_output_other_seed_other_output(hr):
    a = CAMERA.make_lr(hr, None, 2, _rng(1))
    b = CAMERA.make_lr(hr, None, 2, _rng(1))
    c = CAMERA.make_lr(hr, None, 2, _rng(2))
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # evaluation draws are fixed per image index, and differ between images
    lr = degrade(hr, 2)
    e1 = CAMERA.apply_for_eval(lr, 0, hr=hr, scale=2)
    assert np.array_equal(e1, CAMERA.apply_for_eval(lr, 0, hr=hr, scale=2))
    assert not np.array_equal(e1, CAMERA.apply_for_eval(lr, 1, hr=hr, scale=2))


@pytest.mark.parametrize("part", [{"blur": 1.5}, {"resize": "area"}, {"noise_sigma": 8.0}, {"jpeg_quality": (40, 40)}])
def test_each_part_alone_changes_the_lr_and_nothing_else_does(hr, part):
    clean = degrade(hr, 2)
    out = Degradation(**part).make_lr(hr, clean, 2, _rng())
    assert out.shape == clean.shape
    diff = np.abs(out.astype(int) - clean.astype(int)).mean()
    assert diff > 0.5, part
    # switched off again: the protocol's LR exactly
    off = {"blur": 0.0, "resize": "bicubic", "noise_sigma": 0.0, "jpeg_quality": None}
    assert np.array_equal(Degradation(**{k: off[k] for k in part}).make_lr(hr, clean, 2, _rng()), clean)


def test_blur_softens_and_noise_is_mild(hr):
    clean = degrade(hr, 2).astype(float)
    blurred = Degradation(blur=2.0).make_lr(hr, None, 2, _rng(0)).astype(float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(clean, axis=1)).mean()
    noisy = Degradation(noise_sigma=2.0).make_lr(hr, None, 2, _rng(0)).astype(float)
    assert 0 < np.abs(noisy - clean).mean() < 2.5


def test_jpeg_uses_420_chroma_like_cameras():
    # one-pixel red/blue stripes: 4:2:0 averages the chroma of neighbouring columns away, 4:4:4 keeps it
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, ::2] = (200, 30, 30)
    img[:, 1::2] = (30, 30, 200)
    err420 = np.abs(jpeg_roundtrip(img, 95, True).astype(int) - img).mean()
    err444 = np.abs(jpeg_roundtrip(img, 95, False).astype(int) - img).mean()
    assert err420 > 3 * err444
    assert CAMERA.chroma_420 and CAMERA.jpeg_quality == (70, 98)


def test_parts_run_in_camera_order_and_bad_values_are_refused():
    assert (
        CAMERA.describe().index("blur")
        < CAMERA.describe().index("downscale")
        < CAMERA.describe().index("noise")
        < CAMERA.describe().index("JPEG")
    )
    with pytest.raises(ValueError, match="resize"):
        Degradation(resize="lanczos")
    with pytest.raises(ValueError, match="JPEG"):
        Degradation(jpeg_quality=(90, 80))
    with pytest.raises(ValueError, match="HR"):
        CAMERA.apply_for_eval(np.zeros((8, 8, 3), np.uint8), 0)


def test_parse_degradation():
    assert parse_degradation("none") == Degradation()
    assert parse_degradation("jpeg:85") == Degradation(jpeg_quality=(85, 85))
    assert parse_degradation("jpeg:70-90") == Degradation(jpeg_quality=(70, 90))
    assert parse_degradation("camera") == CAMERA
    for bad in ("jpeg:", "jpeg:0", "jpeg:abc", "gif"):
        with pytest.raises(ValueError):
            parse_degradation(bad)


def _solid(folder, name, h, w, colour):
    from mlrn_core import imageio

    folder.mkdir(parents=True, exist_ok=True)
    imageio.write_image(imageio.picture_from_array(np.full((h, w, 3), colour, np.uint8)), folder / name)


def test_patches_are_drawn_by_area(tmp_path):
    _solid(tmp_path / "d", "big.png", 256, 256, 200)
    _solid(tmp_path / "d", "small.png", 40, 40, 20)
    pairs, _ = load_pairs([tmp_path / "d"], 2, 32)
    by_area = PatchSampler(pairs, 2, 16, 8, seed=1)
    shares = dict(zip([p.path.name for p in by_area.pairs], by_area.image_shares()))
    assert shares["big.png"] == pytest.approx(113**2 / (113**2 + 5**2))

    def big_fraction(sampler):
        lo = np.concatenate([sampler.batch_arrays(step)[0] for step in range(40)])
        return float((lo.mean(axis=(1, 2, 3)) > 0.5).mean())

    assert big_fraction(by_area) > 0.97
    assert 0.35 < big_fraction(PatchSampler(pairs, 2, 16, 8, seed=1, by_area=False)) < 0.65


def test_sampler_applies_the_hr_side_of_the_degradation(tmp_path):
    write_png_folder(tmp_path / "d", 2)
    pairs, _ = load_pairs([tmp_path / "d"], 2, 32)
    clean = PatchSampler(pairs, 2, 16, 2, seed=1).batch_arrays(0)
    area = PatchSampler(pairs, 2, 16, 2, seed=1, degradation=Degradation(resize="area")).batch_arrays(0)
    assert np.array_equal(clean[1], area[1])  # HR untouched
    assert not np.array_equal(clean[0], area[0])
    # the area LR is the box average of its HR patch
    hr = area[1][0].transpose(1, 2, 0)
    box = hr.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    assert np.abs(box - area[0][0].transpose(1, 2, 0)).max() < 1.5 / 255


def test_trainer_validates_on_inputs_made_from_the_hr(tmp_path, monkeypatch):
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    write_png_folder(tmp_path / "train", 3)
    write_png_folder(tmp_path / "val", 1, 48, 48)
    events = []
    cfg = TrainConfig(
        data=(str(tmp_path / "train"),),
        val=(str(tmp_path / "val"),),
        out=str(tmp_path / "run"),
        features=8,
        blocks=1,
        batch=2,
        patch=16,
        max_steps=2,
        val_every=2,
        warmup_steps=1,
        blur=1.0,
        resize="area",
        noise_sigma=2.0,
        jpeg_quality=(70, 98),
    )
    Trainer(cfg, events.append).run()
    val = [e for e in events if isinstance(e, ValidationEvent)][0]
    pairs, _ = load_pairs([tmp_path / "val"], 2, 15)
    from mlrn_core.metrics import imresize

    lr = cfg.degradation().apply_for_eval(pairs[0].lr, 0, hr=pairs[0].hr, scale=2)
    assert val.bicubic_psnr == pytest.approx(psnr_y(imresize(lr, 2), pairs[0].hr, 2), abs=1e-6)


def test_validation_split_writes_the_documented_crops(tmp_path):
    src = tmp_path / "OpenPhotos"
    for i, name in enumerate(validation.FILES):
        _solid(src, name.replace(".jpg", ".png"), 10, 10, 0)  # wrong names first: not the split's files
        img = textured_image(520 + i, 600, seed=i)
        from mlrn_core import imageio

        imageio.write_image(imageio.picture_from_array(img), src / name, quality=100)
    folder, excluded = validation.validation_split(src, tmp_path / "out")
    assert [p.name for p in excluded] == list(validation.FILES)
    crops = sorted(folder.glob("*.png"))
    assert len(crops) == 10
    from mlrn_core import imageio

    first = imageio.picture_to_uint8_rgb(imageio.read_image(src / validation.FILES[0]))
    crop = imageio.picture_to_uint8_rgb(imageio.read_image(folder / (validation.FILES[0][:-4] + ".png")))
    assert crop.shape == (480, 480, 3)
    assert np.array_equal(crop, first[20:500, 60:540])
    digest = validation.split_digest(folder)
    # a damaged crop is rewritten; a stray file is removed
    (folder / (validation.FILES[1][:-4] + ".png")).write_bytes(b"junk")
    (folder / "stray.png").write_bytes(b"x")
    validation.validation_split(src, tmp_path / "out")
    assert validation.split_digest(folder) == digest and not (folder / "stray.png").exists()
    (src / validation.FILES[3]).unlink()
    with pytest.raises(validation.SplitError, match=validation.FILES[3]):
        validation.validation_split(src, tmp_path / "out")


def test_bench_degrade_jpeg_lowers_the_bicubic_score(tmp_path, capsys):
    from mlrn_core.cli import main

    write_png_folder(tmp_path / "hr", 2, 64, 64)
    scores = {}
    for spec in ("none", "jpeg:30"):
        assert main(["bench", str(tmp_path / "hr"), "-s", "2", "--json", "--degrade", spec]) == 0
        scores[spec] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["bicubic"]["psnr"]
    assert scores["jpeg:30"] < scores["none"] - 0.3
    assert main(["bench", str(tmp_path / "hr"), "-s", "2", "--degrade", "jpeg:x"]) != 0
    assert "--degrade" in capsys.readouterr().err


def test_luma_of_jpeg_roundtrip_is_close_at_high_quality(hr):
    out = jpeg_roundtrip(hr, 98)
    assert np.abs(rgb_to_y(out) - rgb_to_y(hr)).mean() < 1.5


def test_the_wizards_match_camera_jpegs_is_the_camera_pipeline(tmp_path):
    from app.wizard.state import WizardState

    state = WizardState(folders=[str(tmp_path)], jpeg=True)
    assert state.degradation == CAMERA
    cfg = state.build_config(out=str(tmp_path / "speed"))
    assert cfg.degradation() == CAMERA
    state.jpeg_quality, state.noise_sigma = (80, 90), 1.0  # the Setup page's range and noise, the rest kept
    assert state.degradation == Degradation((80, 90), 1.0, CAMERA.blur, CAMERA.resize)
    state.jpeg = False
    assert not state.build_config(out=str(tmp_path / "speed")).degradation().active


def test_clean_share_leaves_that_fraction_of_samples_clean_and_evaluation_fully_degraded(hr):
    clean = degrade(hr, 2)
    mixed = Degradation(jpeg_quality=(40, 40), noise_sigma=4.0, clean_share=0.3)
    rng = _rng(7)
    outs = [mixed.make_lr(hr, clean, 2, rng) for _ in range(200)]
    n_clean = sum(np.array_equal(o, clean) for o in outs)
    assert 40 <= n_clean <= 80  # 30% of 200, drawn
    # the LR-only path (no HR needed) draws the same way
    assert 40 <= sum(np.array_equal(mixed.apply(clean, rng), clean) for _ in range(200)) <= 80
    # evaluation never takes the clean branch: every image degraded exactly as without the share
    full = mixed.without_clean_share()
    assert full.clean_share == 0 and full.jpeg_quality == (40, 40)
    for i in range(20):
        e = mixed.apply_for_eval(clean, i, hr=hr, scale=2)
        assert not np.array_equal(e, clean)
        assert np.array_equal(e, full.apply_for_eval(clean, i, hr=hr, scale=2))
    assert "30% of samples left clean" in mixed.describe()
    with pytest.raises(ValueError, match="clean_share"):
        Degradation(clean_share=1.0)


def test_trainer_trains_with_the_clean_share_but_validates_fully_degraded(tmp_path, monkeypatch):
    monkeypatch.setenv("MLRN_HOME", str(tmp_path / "home"))
    write_png_folder(tmp_path / "train", 3)
    write_png_folder(tmp_path / "val", 1, 48, 48)
    events = []
    cfg = TrainConfig(
        data=(str(tmp_path / "train"),),
        val=(str(tmp_path / "val"),),
        out=str(tmp_path / "run"),
        features=8,
        blocks=1,
        batch=2,
        patch=16,
        max_steps=2,
        val_every=2,
        warmup_steps=1,
        noise_sigma=2.0,
        jpeg_quality=(50, 60),
        clean_share=0.5,
    )
    assert TrainConfig.from_json(json.loads(json.dumps(cfg.to_json()))).clean_share == 0.5
    trainer = Trainer(cfg, events.append)
    trainer.run()
    assert trainer.sampler.degradation.clean_share == 0.5
    val = [e for e in events if isinstance(e, ValidationEvent)][0]
    pairs, _ = load_pairs([tmp_path / "val"], 2, 15)
    from mlrn_core.metrics import imresize

    full = Degradation(jpeg_quality=(50, 60), noise_sigma=2.0).apply_for_eval(pairs[0].lr, 0)
    assert val.bicubic_psnr == pytest.approx(psnr_y(imresize(full, 2), pairs[0].hr, 2), abs=1e-6)
    assert val.bicubic_psnr < psnr_y(imresize(pairs[0].lr, 2), pairs[0].hr, 2) - 0.1
