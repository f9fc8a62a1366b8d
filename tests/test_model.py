import pytest
import torch

from mlrn_core import MLRN
from mlrn_core.model import SplitFusion, concat_free, count_parameters, weights_key


def test_parameter_count_matches_the_paper_reading():
    n = count_parameters(MLRN(scale=2))
    assert 0.85e6 < n < 0.95e6, n  # MLRN.md: "about 0.9 M parameters" at x2
    assert n == 914_723


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(17, 23), (1, 1), (32, 9)])
def test_output_shape_for_odd_sizes(scale, size):
    m = MLRN(scale=scale, features=8, blocks=2).eval()
    x = torch.rand(2, 3, *size)
    with torch.inference_mode():
        y = m(x)
    assert y.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert y.dtype == torch.float32


@pytest.mark.parametrize(("gff", "rsc"), [(False, False), (True, False), (False, True), (True, True)])
def test_the_four_ablation_variants_build_and_differ(gff, rsc):
    m = MLRN(scale=2, gff=gff, rsc=rsc)
    has_gff = any(k.startswith("gff_fuse") for k in m.state_dict())
    assert has_gff == gff
    assert m.hparams["gff"] is gff and m.hparams["rsc"] is rsc
    with torch.inference_mode():
        assert m(torch.rand(1, 3, 12, 12)).shape == (1, 3, 24, 24)


def test_kernel_readings_are_constructible():
    rect = MLRN(scale=2)  # the equations: 3x3, 3x5, 5x5
    assert tuple(rect.body[0].bypasses[1].conv1.kernel_size) == (3, 5)
    square = MLRN(scale=2, kernels=(3, 5, 7))
    assert [tuple(b.conv1.kernel_size) for b in square.body[0].bypasses] == [(3, 3), (5, 5), (7, 7)]
    assert count_parameters(square) > count_parameters(rect)


def test_rsc_changes_the_function():
    torch.manual_seed(0)
    a = MLRN(scale=2, features=8, blocks=1, rsc=True).eval()
    b = MLRN(scale=2, features=8, blocks=1, rsc=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 10, 10)
    assert not torch.allclose(a(x), b(x))


def test_x4_is_two_x2_stages_by_default():
    m = MLRN(scale=4)
    shuffles = [mod for mod in m.upsample if isinstance(mod, torch.nn.PixelShuffle)]
    assert [s.upscale_factor for s in shuffles] == [2, 2]
    one = MLRN(scale=4, x4_two_stages=False)
    assert [s.upscale_factor for s in one.upsample if isinstance(s, torch.nn.PixelShuffle)] == [4]


def test_bad_arguments_say_what_was_received():
    with pytest.raises(ValueError, match="got 5"):
        MLRN(scale=5)
    with pytest.raises(ValueError, match="odd"):
        MLRN(scale=2, kernels=(4,))


def test_image_skip_output_is_bicubic_plus_residual():
    m = MLRN(scale=2, features=8, blocks=1, image_skip=True).eval()
    for p in m.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 3, 8, 8)
    expected = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
    with torch.inference_mode():
        assert torch.allclose(m(x), expected + m.rgb_mean, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale": 2},
        {"scale": 3, "features": 8, "blocks": 3, "kernels": (3, 5, 7)},
        {"scale": 4, "features": 12, "blocks": 2, "gff": False},
        {"scale": 4, "features": 8, "blocks": 2, "rsc": False, "x4_two_stages": False, "image_skip": True},
    ],
)
def test_concat_free_is_the_same_function_without_a_concatenation(kwargs, monkeypatch):
    torch.manual_seed(0)
    model = MLRN(**kwargs).eval()
    for p in model.parameters():  # trained-like weights, not the zero biases of a fresh network
        torch.nn.init.normal_(p, std=0.05)
    before = weights_key(model)
    x = torch.rand(1, 3, 21, 30)
    with torch.inference_mode():
        expected = model(x)
    free = concat_free(model).eval()
    fusions = [m for m in free.modules() if isinstance(m, SplitFusion)]
    assert len(fusions) == model.hparams["blocks"] * len(model.hparams["kernels"]) + (1 if model.gff else 0)

    def no_concat(*_a, **_k):
        raise AssertionError("the concat-free copy concatenated")

    monkeypatch.setattr(torch, "cat", no_concat)
    with torch.inference_mode():
        got = free(x)
    torch.testing.assert_close(got, expected, atol=2e-5, rtol=0)
    assert weights_key(model) == before  # the model itself keeps its form and its key
    assert not any(isinstance(m, SplitFusion) for m in model.modules())


def test_a_split_fusion_refuses_what_is_not_a_1x1_convolution_of_its_widths():
    with pytest.raises(ValueError, match="cannot split"):
        SplitFusion(torch.nn.Conv2d(8, 4, 3), (4, 4))
    with pytest.raises(ValueError, match="cannot split"):
        SplitFusion(torch.nn.Conv2d(8, 4, 1), (4, 3))
