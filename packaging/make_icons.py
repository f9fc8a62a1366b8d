"""Draw the MLRN Studio app icon: a photo whose lower-left half is coarse pixels and upper-right half is sharp.

Writes ``resources/icons/mlrn-studio.png`` (256x256 RGBA) and ``resources/icons/mlrn-studio.ico``
(16 to 256 px) with Pillow only, so the icon can be redrawn on any machine::

    python packaging/make_icons.py            # writes into resources/icons/
    python packaging/make_icons.py --out DIR  # somewhere else
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

SIZE = 256
SS = 4  # supersampling factor: draw at 1024 px, shrink with a good filter for smooth edges
CELLS = 10  # the coarse half shows the picture on a grid of CELLS x CELLS big pixels
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
ROOT = Path(__file__).resolve().parent.parent


def _scene(size: int) -> Image.Image:
    """The picture: a sky that darkens upwards, a sun and two mountains (a landscape photo)."""
    img = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(img)
    top, bottom = (38, 64, 140), (250, 170, 110)
    for y in range(size):  # vertical sky gradient
        t = y / (size - 1)
        draw.line([(0, y), (size, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom)))
    s = size / 256
    draw.ellipse([150 * s, 52 * s, 206 * s, 108 * s], fill=(255, 226, 120))  # sun
    draw.polygon([(-10 * s, 230 * s), (92 * s, 92 * s), (190 * s, 230 * s)], fill=(52, 74, 112))  # far peak
    draw.polygon([(70 * s, 240 * s), (172 * s, 120 * s), (276 * s, 240 * s)], fill=(28, 40, 70))  # near peak
    draw.polygon(
        [(172 * s, 120 * s), (152 * s, 144 * s), (166 * s, 140 * s), (178 * s, 150 * s), (190 * s, 141 * s)],
        fill=(236, 240, 250),
    )  # snow cap
    draw.rectangle([0, 226 * s, size, size], fill=(20, 28, 52))  # foreground
    return img


def _pixelated(scene: Image.Image) -> Image.Image:
    """The scene as CELLS x CELLS big pixels with thin dark grid lines between them."""
    size = scene.width
    coarse = scene.resize((CELLS, CELLS), Image.Resampling.BOX).resize((size, size), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(coarse)
    step = size / CELLS
    for i in range(1, CELLS):
        pos = round(i * step)
        draw.line([(pos, 0), (pos, size)], fill=(12, 16, 30), width=max(1, size // 256))
        draw.line([(0, pos), (size, pos)], fill=(12, 16, 30), width=max(1, size // 256))
    return coarse


def draw_icon(size: int = SIZE) -> Image.Image:
    """The icon as an RGBA image of ``size`` x ``size`` pixels."""
    big = size * SS
    sharp = _scene(big)
    coarse = _pixelated(sharp)
    # Lower-left triangle coarse, upper-right triangle sharp: the picture "turns sharp" along the diagonal.
    split = Image.new("L", (big, big), 0)
    ImageDraw.Draw(split).polygon([(0, 0), (0, big), (big, big)], fill=255)
    picture = Image.composite(coarse, sharp, split)
    # The diagonal seam: a light line, like the divider of the app's side-by-side viewer.
    draw = ImageDraw.Draw(picture)
    draw.line([(0, 0), (big, big)], fill=(255, 255, 255), width=6 * SS * size // 256)
    # Rounded-square outline with a soft shadow, as app icons on every desktop have.
    margin, radius = 12 * big // 256, 44 * big // 256
    mask = Image.new("L", (big, big), 0)
    ImageDraw.Draw(mask).rounded_rectangle([margin, margin, big - margin, big - margin], radius=radius, fill=255)
    shadow = mask.filter(ImageFilter.GaussianBlur(6 * SS)).point(lambda v: v * 0.45)
    shadow = ImageChops.offset(shadow, 0, 3 * SS)
    out = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    out.paste((0, 0, 0, 255), (0, 0), shadow)
    framed = picture.convert("RGBA")
    out.paste(framed, (0, 0), mask)
    ring = ImageDraw.Draw(out)
    ring.rounded_rectangle(
        [margin, margin, big - margin, big - margin], radius=radius, outline=(255, 255, 255, 90), width=2 * SS
    )
    return out.resize((size, size), Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "icons", help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    icon = draw_icon(SIZE)
    png, ico = args.out / "mlrn-studio.png", args.out / "mlrn-studio.ico"
    icon.save(png, optimize=True)
    icon.save(ico, sizes=ICO_SIZES)  # Pillow shrinks the 256 px image to each size in the .ico
    print(f"wrote {png} and {ico}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
