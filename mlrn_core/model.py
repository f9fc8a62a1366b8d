"""The MLRN network (Multi-Level Feature Fusion network for single-image super-resolution).

Built exactly as ``docs/MLRN.md`` in the shared folder reads the paper (Fig. 1-3, eqs. 1-9): mean shift,
a 3x3 head, an SFblock, N FSFblocks with three bypasses of different kernel sizes fused by 1x1
convolutions, global feature fusion (GFF) and a residual skip connection (RSC), sub-pixel upscaling
and an SFblock "correcting layer" before the last 3x3 convolution. Every reading the paper leaves open
is a keyword argument with the project's default, so the paper's ablation (Table 1) and other
readings can be built without editing code. Input and output are float32 NCHW RGB in [0, 1].
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: The DIV2K RGB mean subtracted at the input and added back at the output (paper IV.B).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)

#: The equations' kernel sizes C_3x3, C_3x5, C_5x5 (a rectangular 3x5 in the middle).
DEFAULT_KERNELS: tuple[tuple[int, int], ...] = ((3, 3), (3, 5), (5, 5))

ARCH_NAME = "MLRN"


def _pair(k: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(k, int):
        return (k, k)
    kh, kw = (int(v) for v in k)
    return (kh, kw)


def _conv(cin: int, cout: int, kernel: int | Sequence[int]) -> nn.Conv2d:
    kh, kw = _pair(kernel)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel sizes must be odd for 'same' padding, got {kh}x{kw}")
    return nn.Conv2d(cin, cout, (kh, kw), padding=(kh // 2, kw // 2))


class SFBlock(nn.Module):
    """Shallow feature block (Fig. 2): two 1x1 convolutions with a local residual."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 1)
        self.conv2 = nn.Conv2d(features, features, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Bypass(nn.Module):
    """C_k(x) = conv_k(act(conv_k(x))), G -> G, 'same' zero padding."""

    def __init__(self, features: int, kernel: int | Sequence[int]) -> None:
        super().__init__()
        self.conv1 = _conv(features, features, kernel)
        self.conv2 = _conv(features, features, kernel)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class FSFBlock(nn.Module):
    """Fused shallow feature block (Fig. 3, eqs. 6-9).

    Each bypass sees the block input; its output is concatenated with the previous fusion result and
    fused back to G channels by a 1x1 convolution; the block adds its input at the end.
    """

    def __init__(self, features: int, kernels: Sequence[int | Sequence[int]]) -> None:
        super().__init__()
        if len(kernels) < 1:
            raise ValueError("an FSFblock needs at least one bypass kernel size")
        self.bypasses = nn.ModuleList(Bypass(features, k) for k in kernels)
        self.fuses = nn.ModuleList(nn.Conv2d(2 * features, features, 1) for _ in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = x
        for bypass, fuse in zip(self.bypasses, self.fuses):
            fused = fuse(bypass(x), fused) if isinstance(fuse, SplitFusion) else fuse(torch.cat([bypass(x), fused], 1))
        return fused + x


class SplitFusion(nn.Module):
    """A 1x1 convolution over concatenated inputs, as one 1x1 convolution per input, summed: the same sums
    without the concatenation (:func:`concat_free`). ``conv``'s bias goes to the first part."""

    def __init__(self, conv: nn.Conv2d, widths: Sequence[int]) -> None:
        super().__init__()
        if conv.kernel_size != (1, 1) or sum(widths) != conv.in_channels:
            raise ValueError(f"cannot split a {conv.kernel_size} convolution of {conv.in_channels} inputs by {widths}")
        self.parts = nn.ModuleList()
        start = 0
        for i, width in enumerate(widths):
            part = nn.Conv2d(width, conv.out_channels, 1, bias=i == 0)
            with torch.no_grad():
                part.weight.copy_(conv.weight[:, start : start + width])
                if i == 0 and conv.bias is not None:
                    part.bias.copy_(conv.bias)
                elif i == 0:
                    part.bias.zero_()
            self.parts.append(part)
            start += width

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self.parts[0](inputs[0])
        for part, x in zip(self.parts[1:], inputs[1:]):
            out = out + part(x)
        return out


class Upsampler(nn.Sequential):
    """Sub-pixel convolution (eq. 5): conv3x3 G -> G*r^2 and PixelShuffle(r); x4 as two x2 stages."""

    def __init__(self, scale: int, features: int, x4_two_stages: bool = True) -> None:
        stages = [2, 2] if (scale == 4 and x4_two_stages) else [scale]
        layers: list[nn.Module] = []
        for r in stages:
            layers += [nn.Conv2d(features, features * r * r, 3, padding=1), nn.PixelShuffle(r)]
        super().__init__(*layers)


class MLRN(nn.Module):
    """MLRN super-resolution network.

    Args (keyword-only, the paper's defaults):
        scale: upscaling factor, 2, 3 or 4.
        features: G, feature channels (32).
        blocks: N, number of FSFblocks (8).
        kernels: kernel size of each FSFblock bypass, ints or (h, w) pairs;
            default ((3, 3), (3, 5), (5, 5)) as the equations write them.
        gff: global feature fusion of all block outputs (True).
        rsc: residual skip connection adding the head features to the body output (True).
        image_skip: add a bicubic upscale of the input to the output, so the network learns only the
            residual (False in the paper; a training-speed option, recorded in checkpoints).
        x4_two_stages: build x4 as two x2 sub-pixel stages (True, EDSR convention).
        rgb_mean: mean subtracted at the input and added back at the output.

    Input and output: float32 NCHW RGB in [0, 1]; output is (N, 3, H*scale, W*scale), not clamped.
    """

    def __init__(
        self,
        *,
        scale: int = 2,
        features: int = 32,
        blocks: int = 8,
        kernels: Sequence[int | Sequence[int]] = DEFAULT_KERNELS,
        gff: bool = True,
        rsc: bool = True,
        image_skip: bool = False,
        x4_two_stages: bool = True,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale!r}")
        if features < 1 or blocks < 1:
            raise ValueError(f"features and blocks must be positive, got {features} and {blocks}")
        self.scale = scale
        self.gff = gff
        self.rsc = rsc
        self.image_skip = image_skip
        self.hparams = {
            "scale": scale,
            "features": features,
            "blocks": blocks,
            "kernels": [list(_pair(k)) for k in kernels],
            "gff": gff,
            "rsc": rsc,
            "image_skip": image_skip,
            "x4_two_stages": x4_two_stages,
            "rgb_mean": [float(v) for v in rgb_mean],
        }
        self.register_buffer("rgb_mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.head = _conv(3, features, 3)
        self.sf = SFBlock(features)
        self.body = nn.ModuleList(FSFBlock(features, kernels) for _ in range(blocks))
        if gff:
            self.gff_fuse = nn.Sequential(
                nn.Conv2d(blocks * features, features, 1), nn.Conv2d(features, features, 3, padding=1)
            )
        self.upsample = Upsampler(scale, features, x4_two_stages)
        self.tail_sf = SFBlock(features)
        self.tail = _conv(features, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.rgb_mean.to(dtype=x.dtype)
        f_head = self.head(x - mean)
        f = self.sf(f_head)
        outs = []
        for block in self.body:
            f = block(f)
            if self.gff:
                outs.append(f)
        if self.gff and isinstance(self.gff_fuse[0], SplitFusion):
            body = self.gff_fuse[1](self.gff_fuse[0](*outs))
        else:
            body = self.gff_fuse(torch.cat(outs, dim=1)) if self.gff else f
        if self.rsc:
            body = body + f_head
        y = self.tail(self.tail_sf(self.upsample(body))) + mean
        if self.image_skip:
            y = y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return y


def concat_free(model: MLRN) -> MLRN:
    """A copy of ``model`` that computes the same function with no concatenation, for OpenVINO (issue 31).

    Each 1x1 fusion over concatenated features (the FSFblocks' fusions and the global fusion) becomes one 1x1
    convolution per input, summed (:class:`SplitFusion`): the same sums in another order (fp32 outputs within
    about 1e-6). OpenVINO's CPU plugin then copies no concatenation (6-7% of an int8 tile's time with AVX2) and
    fuses each sum into its convolution, and in the int8 networks every input of a fusion gets its own int8
    range instead of one range shared across the concatenation. Only the converted networks use the copy: the
    model keeps its form (training, PyTorch inference) and its :func:`weights_key`."""
    import copy

    net = copy.deepcopy(model)
    for block in net.body:
        for i, fuse in enumerate(block.fuses):
            if isinstance(fuse, nn.Conv2d):
                half = fuse.in_channels // 2
                block.fuses[i] = SplitFusion(fuse, (half, fuse.in_channels - half))
    if net.gff and isinstance(net.gff_fuse[0], nn.Conv2d):
        conv = net.gff_fuse[0]
        features = conv.in_channels // len(net.body)
        net.gff_fuse[0] = SplitFusion(conv, [features] * len(net.body))
    return net


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_key(model: nn.Module) -> str:
    """A name for a network: its weights and hyper-parameters (the same file always gives the same key). Auto's
    measurements (:mod:`mlrn_core.backends`) and the int8 networks (:mod:`mlrn_core.openvino_backend`) are kept
    under it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    hparams = getattr(model, "hparams", None) or {"class": type(model).__name__, "scale": getattr(model, "scale", 0)}
    digest.update(json.dumps(hparams, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]
