"""Make docs/results.md's before/after crop: bicubic | MLRN | original, from an HR photo.

The HR image is downscaled with the protocol's MATLAB bicubic, then upscaled back with bicubic and with
the model; the same crop of the three is placed side by side (enlarged with nearest-neighbour so pixels
can be judged) with labels and each method's Y-PSNR against the original (whole image, not the crop).

Usage: ``python scripts/compare_crop.py IMAGE -s 2 [--model NAME|PATH] [--crop X Y W H] [-o docs/compare_x2.png]``
(crop in HR pixels; default: a 160 px square at the image centre).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlrn_core import imageio, registry  # noqa: E402
from mlrn_core.metrics import degrade, imresize, modcrop, psnr_y, to_uint8  # noqa: E402
from mlrn_core.tiling import upscale_array  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("-s", "--scale", type=int, choices=(2, 3, 4), default=2)
    ap.add_argument("--model", default=None, help="model name or file (default: the built-in one)")
    ap.add_argument("--crop", type=int, nargs=4, metavar=("X", "Y", "W", "H"))
    ap.add_argument("--zoom", type=int, default=2, help="nearest-neighbour enlargement of the crops")
    ap.add_argument("-o", "--out", default=None)
    args = ap.parse_args()
    s = args.scale
    hr = modcrop(imageio.picture_to_uint8_rgb(imageio.read_image(args.image)), s)
    lr = degrade(hr, s)
    bic = imresize(lr, s)
    loaded = registry.load_model(args.model, s)
    sr = to_uint8(upscale_array(loaded.model, lr.astype(np.float32) / 255, device="cpu"))
    h, w = hr.shape[:2]
    x, y, cw, ch = args.crop or ((w - 160) // 2, (h - 160) // 2, 160, 160)
    crops = [("bicubic", bic), ("MLRN", sr), ("original", hr)]
    font = ImageFont.load_default(size=18) if hasattr(ImageFont, "load_default") else None
    z, pad, label_h = args.zoom, 8, 28
    sheet = Image.new("RGB", (3 * cw * z + 4 * pad, ch * z + label_h + 2 * pad), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for i, (name, img) in enumerate(crops):
        part = img[y : y + ch, x : x + cw]
        tile = Image.fromarray(part).resize((cw * z, ch * z), Image.NEAREST)
        ox = pad + i * (cw * z + pad)
        sheet.paste(tile, (ox, label_h + pad))
        text = name if name == "original" else f"{name}  {psnr_y(img, hr, s):.2f} dB"
        draw.text((ox, 6), text, fill=(235, 235, 235), font=font)
    out = Path(args.out or REPO / "docs" / f"compare_x{s}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(
        f"wrote {out} (whole-image Y-PSNR: bicubic {psnr_y(bic, hr, s):.2f} dB, "
        f"{loaded.name} {psnr_y(sr, hr, s):.2f} dB)"
    )


if __name__ == "__main__":
    main()
