"""Draw the editing suite's init images and masks (run once; the PNGs are committed).

    python prompt_suites/editing/draw.py

Flat-colour scenes drawn with Pillow (256x256, no fonts, no randomness), so they are
tiny, deterministic and free of any licence question. Masks: white = repaint, black = keep.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SIZE = 256


def canvas(color: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (SIZE, SIZE), color)
    return image, ImageDraw.Draw(image)


def mask(shapes: list[tuple[str, tuple[int, int, int, int]]]) -> Image.Image:
    image = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(image)
    for kind, box in shapes:
        (draw.ellipse if kind == "ellipse" else draw.rectangle)(box, fill=255)
    return image


def hills() -> Image.Image:
    image, draw = canvas("#8ec5ff")
    draw.ellipse((-80, 150, 200, 360), fill="#4f9d4f")
    draw.ellipse((90, 170, 360, 380), fill="#3f8a3f")
    draw.ellipse((190, 24, 232, 66), fill="#ffe066")
    return image


def room() -> Image.Image:
    image, draw = canvas("#e8dcc8")
    draw.rectangle((0, 190, 255, 255), fill="#9b6b43")  # floor
    draw.rectangle((70, 40, 186, 140), fill="#ffffff")  # window frame
    draw.rectangle((78, 48, 178, 132), fill="#9fd3ff")  # glass
    draw.line((128, 48, 128, 132), fill="#ffffff", width=6)
    return image


def table() -> Image.Image:
    image, draw = canvas("#d9e4ec")
    draw.rectangle((20, 150, 236, 170), fill="#8b5a2b")  # table top
    draw.rectangle((36, 170, 50, 250), fill="#6d4520")
    draw.rectangle((206, 170, 220, 250), fill="#6d4520")
    return image


def signpost() -> Image.Image:
    image, draw = canvas("#bfe3ff")
    draw.rectangle((0, 200, 255, 255), fill="#6fae5a")
    draw.rectangle((122, 120, 134, 230), fill="#7a5230")  # post
    draw.rectangle((48, 60, 208, 130), fill="#c8a070")  # blank board
    return image


def house() -> Image.Image:
    image, draw = canvas("#cfe8ff")
    draw.rectangle((0, 200, 255, 255), fill="#7cb86a")
    draw.rectangle((70, 110, 186, 205), fill="#e05d44")
    draw.polygon([(60, 112), (128, 50), (196, 112)], fill="#5a3d2b")
    draw.rectangle((115, 150, 141, 205), fill="#3b2a1f")
    return image


def main() -> None:
    images = {"hills": hills(), "room": room(), "table": table(), "signpost": signpost(),
              "house": house()}
    masks = {
        "hills_sky_mask": mask([("ellipse", (60, 20, 180, 120))]),
        "room_window_mask": mask([("rectangle", (78, 48, 178, 132))]),
        "table_top_mask": mask([("rectangle", (90, 80, 166, 150))]),
        "signpost_board_mask": mask([("rectangle", (48, 60, 208, 130))]),
    }
    for name, image in {**images, **masks}.items():
        image.save(HERE / f"{name}.png", optimize=True)


if __name__ == "__main__":
    main()
