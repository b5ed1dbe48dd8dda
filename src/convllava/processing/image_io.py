"""image_io.py

Safe image loading: every failure (missing, empty, not an image, truncated, too many pixels) becomes an
`ImageLoadError` (a `ValueError`) that names the file and says what to do, never a crash deep inside PIL.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Default pixel limit (width * height): 100 MP, far above any resolution the models use.
DEFAULT_MAX_PIXELS: int = 100_000_000

ImageSource = str | os.PathLike | Image.Image


class ImageLoadError(ValueError):
    """An image could not be used; the message names the file and the problem."""


def load_image(
    source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS, exif_transpose: bool = False
) -> Image.Image:
    """Open `source` (a path or a PIL image), fully decode it and return it in RGB.

    RGB conversion follows the original code (`Image.open(...).convert("RGB")`): alpha is dropped.
    `exif_transpose=True` turns camera photos upright (the server does; training matches the original, which did not).
    """
    if isinstance(source, Image.Image):
        _check_pixels(source.size, "<PIL image>", max_pixels)
        return to_rgb(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(f"expected an image path or a PIL.Image, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise ImageLoadError(f"image file {str(path)!r} does not exist (check the path and the image root folder)")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"image file {str(path)!r} is empty (0 bytes); re-download or remove it")
    return _decode(path, str(path), max_pixels, exif_transpose)


def load_image_bytes(
    data: bytes, name: str = "<image bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS, exif_transpose: bool = False
) -> Image.Image:
    """Decode an image held in memory (an upload, a data: URL) with the same checks as `load_image`."""
    if not data:
        raise ImageLoadError(f"image {name!r} is empty (0 bytes)")
    return _decode(io.BytesIO(data), name, max_pixels, exif_transpose)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every mode PIL reads: 16-bit greyscale is scaled, not clipped; palette/LA/RGBA lose alpha."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def _decode(fp: Path | io.BytesIO, name: str, max_pixels: int | None, exif_transpose: bool) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as image:
                _check_pixels(image.size, name, max_pixels)
                image.load()  # decode now, so truncated files fail here and not later
                if exif_transpose:
                    image = ImageOps.exif_transpose(image)
                return to_rgb(image)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name!r} is not an image PIL can read (wrong format or extension?)") from None
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"image {name!r} has too many pixels: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ImageLoadError(f"image {name!r} is corrupt or truncated ({err}); re-download or remove it") from None


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"image {name!r} has an empty size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f"image {name!r} has too many pixels: {width}x{height} = {width * height}, over the limit of {max_pixels}; "
            "downscale it or raise max_pixels on the image processor"
        )
