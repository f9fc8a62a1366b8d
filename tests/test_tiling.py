import numpy as np
import pytest
import torch

from mlrn_core import tiling
from mlrn_core.tiling import Cancelled, TileRunner, plan_tiles, upscale_array
from tests.helpers import textured_image, tiny_model


def _psnr(a, b):
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_matches_untiled(scale):
    model = tiny_model(scale, features=16, blocks=2)
    lr = textured_image(70, 93).astype(np.float32) / 255
    full = TileRunner(model, torch.device("cpu")).run(lr)
    tiled = upscale_array(model, lr, tile=32, overlap=8, device="cpu")
    assert tiled.shape == (70 * scale, 93 * scale, 3)
    assert _psnr(tiled, full) >= 50


def test_full_size_model_tiled_matches_untiled():
    model = tiny_model(2, features=32, blocks=8)  # the real architecture, receptive field included
    lr = textured_image(96, 120).astype(np.float32) / 255
    full = TileRunner(model, torch.device("cpu")).run(lr)
    tiled = upscale_array(model, lr, tile=48, overlap=16, device="cpu")
    assert _psnr(tiled, full) >= 50


def test_tiles_cover_the_image_with_the_requested_overlap():
    tiles = plan_tiles(100, 250, 64, 16)
    covered = np.zeros((100, 250), int)
    for t in tiles:
        covered[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.y1 - t.y0 <= 64 and t.x1 - t.x0 <= 64
    assert covered.min() >= 1
    xs = sorted({(t.x0, t.x1) for t in tiles})
    assert all(a[1] - b[0] >= 16 for a, b in zip(xs, xs[1:]))
    assert plan_tiles(10, 10, 64) == [tiling.Tile(0, 0, 0, 0, 10, 0, 10)]


def test_progress_priority_and_on_tile():
    model = tiny_model(2)
    lr = textured_image(64, 64).astype(np.float32) / 255
    seen, order = [], []
    target = (40, 40)  # the caller's "visible region"

    def prio(t):
        return abs((t.y0 + t.y1) / 2 - target[0]) + abs((t.x0 + t.x1) / 2 - target[1])

    out = upscale_array(
        model,
        lr,
        tile=32,
        overlap=8,
        device="cpu",
        progress=lambda d, n: seen.append((d, n)),
        priority=prio,
        on_tile=lambda t, rects: order.append((t, rects)),
    )
    n = len(plan_tiles(64, 64, 32, 8))
    assert seen[0] == (0, n) and seen[-1] == (n, n)
    first, rects = order[0]
    assert first.y0 > 0 and first.x0 > 0  # the tile nearest (40, 40) came first, not the top-left one
    # what the first tile made final lies inside it and excludes its overlaps with tiles still pending
    for x0, y0, x1, y1 in rects:
        assert first.x0 <= x0 < x1 <= first.x1 and first.y0 <= y0 < y1 <= first.y1
    assert sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in rects) < (first.y1 - first.y0) * (first.x1 - first.x0)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("reverse", [False, True])
def test_final_rects_cover_every_pixel_once_in_any_order(reverse):
    model = tiny_model(2)
    lr = textured_image(75, 115).astype(np.float32) / 255
    tiles = plan_tiles(75, 115, 32, 8)
    rank = {t.index: (-t.index if reverse else t.index) for t in tiles}
    covered = np.zeros((75, 115), np.int32)

    def on_tile(t, rects):
        for x0, y0, x1, y1 in rects:
            covered[y0:y1, x0:x1] += 1

    upscale_array(model, lr, tile=32, overlap=8, device="cpu", priority=lambda t: rank[t.index], on_tile=on_tile)
    assert (covered == 1).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_output_is_the_float_output_rounded_as_the_writer_rounds(dtype):
    from mlrn_core.imageio import _float_to_int

    model = tiny_model(3)
    lr = textured_image(50, 70).astype(np.float32) / 255
    f = upscale_array(model, lr, tile=32, overlap=8, device="cpu")
    q = upscale_array(model, lr, tile=32, overlap=8, device="cpu", dtype=dtype)
    assert q.dtype == dtype and q.shape == f.shape
    np.testing.assert_array_equal(q, _float_to_int(f, dtype))
    canvas = np.zeros(f.shape, dtype)
    assert upscale_array(model, lr, tile=32, overlap=8, device="cpu", out=canvas) is canvas
    np.testing.assert_array_equal(canvas, q)
    with pytest.raises(ValueError, match="shape"):
        upscale_array(model, lr, tile=32, device="cpu", out=np.zeros((10, 10, 3), dtype))


def test_working_memory_is_the_output_plus_a_strip():
    """A uint8 result of 1200 x 1600 needs its own 5.8 MB plus a strip of overlaps, not a float32 copy (23 MB)."""
    import tracemalloc

    model = tiny_model(2, features=4, blocks=1)
    lr = np.random.default_rng(0).random((600, 800, 3), dtype=np.float32)
    out_bytes = 1200 * 1600 * 3
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = upscale_array(model, lr, tile=64, overlap=8, device="cpu", dtype=np.uint8)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert out.nbytes == out_bytes
    # the strip: 8 px of overlap x 2 x 1600 px x 3 x float32 = 0.3 MB (plus tiles and their temporaries)
    assert peak < out_bytes + 3 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_precision_choice_and_bf16_quality():
    cpu = torch.device("cpu")
    assert tiling.resolve_precision(cpu, "auto") == ("bf16" if tiling.cpu_bf16_supported() else "fp32")
    assert tiling.resolve_precision(cpu, "fp32") == "fp32"
    with pytest.raises(ValueError, match="fp16 is for GPUs"):
        tiling.resolve_precision(cpu, "fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        tiling.resolve_precision(cpu, "int4")
    assert TileRunner(tiny_model(2), cpu, half=False).precision == "fp32"
    model = tiny_model(2, features=32, blocks=8)
    lr = textured_image(64, 64).astype(np.float32) / 255
    fp32 = upscale_array(model, lr, tile=32, device="cpu", precision="fp32")
    bf16_runner = TileRunner(model, cpu, precision="bf16")
    assert bf16_runner.channels_last and bf16_runner.precision == "bf16"
    bf16 = upscale_array(model, lr, tile=32, runner=bf16_runner)
    assert 35 < _psnr(bf16, fp32) < float("inf")  # bf16 rounding only, and really not fp32


def test_cancel_raises_and_stops_early():
    model = tiny_model(2)
    lr = textured_image(64, 64).astype(np.float32) / 255
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        upscale_array(model, lr, tile=32, overlap=8, device="cpu", cancel=cancel)
    assert len(calls) == 3


def test_out_of_memory_retries_with_smaller_tiles(monkeypatch):
    model = tiny_model(2)
    lr = textured_image(80, 80).astype(np.float32) / 255
    real_run = TileRunner.run
    sizes = []

    def fake_run(self, tile):
        sizes.append(tile.shape[0])
        if tile.shape[0] > 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_run(self, tile)

    monkeypatch.setattr(TileRunner, "run", fake_run)
    out = upscale_array(model, lr, tile=80, overlap=8, device="cpu")
    assert out.shape == (160, 160, 3)
    assert max(sizes[1:]) <= 40


def test_device_choice():
    assert tiling.pick_device("cpu").type == "cpu"
    assert tiling.pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(tiling.DeviceError, match="CUDA"):
            tiling.pick_device("cuda")
    with pytest.raises(tiling.DeviceError, match="unknown device"):
        tiling.pick_device("tpu")


def test_alpha_is_upscaled_smoothly():
    alpha = np.zeros((20, 20), np.float32)
    alpha[:, 10:] = 1
    up = tiling.upscale_alpha(alpha, 3)
    assert up.shape == (60, 60) and up.min() >= 0 and up.max() <= 1
    assert 0 < up[30, 29] < 1 or 0 < up[30, 30] < 1  # a soft edge, not a jagged copy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_half_precision_matches_cpu():
    model = tiny_model(2, features=32, blocks=8)
    lr = textured_image(128, 128).astype(np.float32) / 255
    cpu = upscale_array(model, lr, tile=64, device="cpu")
    gpu = upscale_array(model, lr, tile=None, device="cuda")
    assert _psnr(gpu, cpu) > 40  # fp16 rounding only


def test_uint8_result_is_written_to_tiff_without_a_full_copy(tmp_path):
    """An upscaled uint8 picture goes to the TIFF writer as it is: no float32 or predictor copy of the image."""
    import tracemalloc

    from mlrn_core import imageio

    yy, xx = np.mgrid[0:1500, 0:2000]
    rgb = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=2).astype(np.uint8)  # compresses well
    picture = imageio.picture_from_array(np.zeros((4, 4, 3), np.uint8)).with_pixels(rgb, None)
    assert picture.rgb.dtype == np.uint8 and picture.rgb is rgb
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        imageio.write_image(picture, tmp_path / "big.tif")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # the compressed strips (small) and one 1 MB strip at a time; a predictor or float copy would be >= 1x
    assert peak < 0.5 * rgb.nbytes, f"peak {peak / 2**20:.1f} MiB for a {rgb.nbytes / 2**20:.1f} MiB image"
    np.testing.assert_array_equal(imageio.picture_to_uint8_rgb(imageio.read_image(tmp_path / "big.tif")), rgb)


def test_a_versioned_priority_is_sorted_once_per_version_in_the_order_min_picks():
    """``priority.version()`` lets the core sort once per view instead of asking every tile before each pick."""
    model = tiny_model(2)
    lr = textured_image(75, 115).astype(np.float32) / 255
    tiles = plan_tiles(75, 115, 32, 8)
    view = [(60.0, 100.0)]
    calls = [0]

    def distance(t, where):  # many ties: the order among them must be the one min() gives
        return abs((t.y0 + t.y1) // 2 - where[0]) // 20 + abs((t.x0 + t.x1) // 2 - where[1]) // 20

    def prio(t):
        calls[0] += 1
        return distance(t, view[0])

    prio.version = lambda: view[0]
    order = []

    def on_tile(t, _rects):
        order.append(t.index)
        if len(order) == 3:
            view[0] = (0.0, 0.0)  # the user scrolled to the top-left corner

    out = upscale_array(model, lr, tile=32, overlap=8, device="cpu", priority=prio, on_tile=on_tile)
    expected, pending, where = [], list(tiles), (60.0, 100.0)
    while pending:
        t = min(pending, key=lambda t: distance(t, where))
        pending.remove(t)
        expected.append(t.index)
        if len(expected) == 3:
            where = (0.0, 0.0)
    assert order == expected
    assert order[3] == 0  # right after the scroll, the top-left tile
    assert calls[0] == len(tiles) + (len(tiles) - 3)  # one sort per view, not one scan per pick
    # the same order gives the same pixels as the unversioned priority (overlap sums are order-sensitive)
    view[0] = (60.0, 100.0)
    rank = {i: k for k, i in enumerate(order)}
    same = upscale_array(model, lr, tile=32, overlap=8, device="cpu", priority=lambda t: rank[t.index])
    np.testing.assert_array_equal(out, same)


@pytest.mark.parametrize("k", range(8))
def test_each_dihedral_transform_is_undone_exactly(k):
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    t = tiling.dihedral_transform(x, k)
    assert t.shape[2:] == ((7, 5) if k & 4 else (5, 7))
    assert torch.equal(tiling.undo_transform(t, k), x)


def test_the_eight_transforms_are_the_eight_symmetries_of_a_rectangle():
    x = torch.arange(4 * 6, dtype=torch.float32).reshape(1, 1, 4, 6)
    a = x[0, 0].numpy()
    # the dihedral group generated independently with numpy: 4 rotations, each with and without a flip
    expected = {tuple(np.rot90(b, r).ravel()) + np.rot90(b, r).shape for b in (a, a[:, ::-1]) for r in range(4)}
    got = {
        tuple(tiling.dihedral_transform(x, k)[0, 0].numpy().ravel()) + tuple(tiling.dihedral_transform(x, k).shape[2:])
        for k in range(8)
    }
    assert got == expected and len(got) == 8


def test_best_quality_is_the_mean_of_the_eight_turned_back_results():
    model = tiny_model(2, features=16, blocks=2)  # a trained-free net: not equivariant, so each pass differs
    lr = textured_image(24, 40).astype(np.float32) / 255
    plain = TileRunner(model, torch.device("cpu"), precision="fp32")
    best = TileRunner(model, torch.device("cpu"), precision="fp32", ensemble=True)
    assert (plain.quality, best.quality) == ("normal", "best")
    assert best.describe() == "PyTorch fp32, best quality"
    # the reference: each rotation/flip done with numpy on HWC arrays, run alone, turned back with numpy
    outs = []
    for flip in (False, True):
        for r in range(4):
            src = lr[:, ::-1] if flip else lr
            y = plain.run(np.ascontiguousarray(np.rot90(src, r)))
            y = np.rot90(y, -r)
            outs.append(y[:, ::-1] if flip else y)
    reference = np.clip(np.mean([np.asarray(o, np.float64) for o in outs], axis=0), 0, 1)
    got = best.run(lr)
    assert got.shape == (48, 80, 3)
    assert np.abs(got - reference).max() < 1e-5
    assert np.abs(got - plain.run(lr)).max() > 1e-3  # it is not the single pass


def test_best_quality_tiles_blend_cancel_and_report_progress_like_normal():
    model = tiny_model(3, features=16, blocks=2)
    lr = textured_image(70, 93).astype(np.float32) / 255
    full = TileRunner(model, torch.device("cpu"), ensemble=True).run(lr)
    seen = []
    tiled = upscale_array(
        model, lr, tile=32, overlap=8, device="cpu", ensemble=True, progress=lambda d, n: seen.append(d)
    )
    assert _psnr(tiled, full) >= 50
    n = len(plan_tiles(70, 93, 32, 8))
    assert seen == list(range(n + 1))
    calls = []
    with pytest.raises(Cancelled):
        upscale_array(
            model,
            lr,
            tile=32,
            overlap=8,
            device="cpu",
            ensemble=True,
            cancel=lambda: len(calls) > 2,
            progress=lambda d, n: calls.append(d),
        )
    assert len(calls) <= 4


@pytest.mark.parametrize("shape", [(1, 100), (3, 70), (90, 2), (1, 1)])
def test_thin_pictures_run_edge_padded_and_every_caller_gets_the_same_pixels_and_rects(shape):
    """Issue 33, item 6: the padding for pictures under 16 px a side lived in the batch only, so the app
    shifted their colours; it is in upscale_array now, with on_tile rectangles in the picture's own pixels."""
    from mlrn_core import edges

    model = tiny_model(2, features=16, blocks=2)
    h, w = shape
    lr = textured_image(max(h, 8), max(w, 8))[:h, :w].astype(np.float32) / 255
    padded, _, box = edges.pad_thin(lr)
    assert box is not None
    expected = edges.crop_upscaled(upscale_array(model, padded, tile=32, overlap=8, device="cpu"), box, 2)
    covered = np.zeros((h, w), int)

    def on_tile(_t, rects):
        for x0, y0, x1, y1 in rects:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            covered[y0:y1, x0:x1] += 1

    out = np.full((h * 2, w * 2, 3), 7, np.uint8)
    upscale_array(model, lr, tile=32, overlap=8, device="cpu", on_tile=on_tile, out=out)
    assert np.array_equal(out, tiling.to_output_dtype(expected, np.uint8))
    assert (covered == 1).all()


def test_tiles_are_cut_to_the_smallest_size_that_keeps_the_overlap():
    # 1200 px in 192 px tiles with 16 px overlaps needs 7 tiles; 186 px each still overlap by >= 16 px, and
    # the network computes 7 * 186 px instead of 7 * 192 (tiles overlapping by up to 24 px)
    tiles = plan_tiles(800, 1200, 192, 16)
    cols = sorted({(t.x0, t.x1) for t in tiles})
    rows = sorted({(t.y0, t.y1) for t in tiles})
    assert len(cols) == 7 and {b - a for a, b in cols} == {186}
    assert len(rows) == 5 and {b - a for a, b in rows} == {173}
    rng = np.random.default_rng(5)
    for _ in range(500):
        h, w = (int(v) for v in rng.integers(1, 2500, 2))
        tile, overlap = int(rng.choice([32, 64, 192, 256])), int(rng.choice([0, 8, 16]))
        plan = plan_tiles(h, w, tile, overlap)
        for spans, length in ((sorted({(t.y0, t.y1) for t in plan}), h), (sorted({(t.x0, t.x1) for t in plan}), w)):
            assert spans[0][0] == 0 and spans[-1][1] == length
            assert all(b - a <= tile for a, b in spans)
            assert all(a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:]))
            # no fewer tiles would do, and one pixel less per tile would break the overlap or the cover
            n, size = len(spans), spans[0][1] - spans[0][0]
            assert n == 1 or (n - 1) * (tile - overlap) + tile < length + (tile - overlap)
            assert n == 1 or n * (size - 1) < length + (n - 1) * overlap
