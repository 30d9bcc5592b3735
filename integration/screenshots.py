"""Copy the README's pictures from the browser check's screenshots into docs/screenshots.

The browser check (``make browser``) photographs every page of the build it
checks into ``_build/browser-screenshots/``, plus close-ups of each chapter's
first widget and first animation; ``make lab-check`` photographs chapter 01's
widget in JupyterLab after a slider move. ``make screenshots`` copies three of them
here, reduced to a 256-colour palette so that they stay small in git::

    python integration/screenshots.py _build/browser-screenshots docs/screenshots
"""

from __future__ import annotations

import argparse
import pathlib
import sys

# (screenshot of the browser check, name in docs/screenshots)
PICTURES = [
    ("book__01_lazy--animation.png", "chapter-animation.png"),
    ("book__02_ntk_flow--widget.png", "chapter-widget.png"),
    # make lab-check: chapter 01 in JupyterLab after its slider was moved (integration/lab.py)
    ("../lab-screenshots/01_lazy-widget.png", "lab-widget.png"),
]


def copy(shots: pathlib.Path, dest: pathlib.Path) -> list[pathlib.Path]:
    from PIL import Image

    missing = [name for name, _ in PICTURES if not (shots / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{shots} lacks {missing}: run `make browser` on a built book and `make lab-check` first")
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, target in PICTURES:
        image = Image.open(shots / name).convert("RGB")
        small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(dest / target, optimize=True)
        written.append(dest / target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shots", type=pathlib.Path)
    parser.add_argument("dest", type=pathlib.Path)
    args = parser.parse_args(argv)
    for path in copy(args.shots, args.dest):
        print(f"{path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
