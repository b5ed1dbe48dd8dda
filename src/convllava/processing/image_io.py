"""image_io.py

Safe image loading: every failure (missing, empty, not an image, truncated, too many pixels) becomes an
`ImageLoadError` (a `ValueError`) that names the file and says what to do, never a crash deep inside PIL.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

#: Default pixel limit (width * height): 100 MP, far above any resolution the models use.
DEFAULT_MAX_PIXELS: int = 100_000_000

ImageSource = str | os.PathLike | Image.Image


class ImageLoadError(ValueError):
    """An image could not be used; the message names the file and the problem."""


def load_image(source: ImageSource, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open `source` (a path or a PIL image), fully decode it and return it in RGB.

    RGB conversion follows the original code (`Image.open(...).convert("RGB")`): alpha is dropped.
    """
    if isinstance(source, Image.Image):
        _check_pixels(source.size, "<PIL image>", max_pixels)
        return source.convert("RGB")
    if not isinstance(source, (str, os.PathLike)):
        raise ImageLoadError(f"expected an image path or a PIL.Image, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise ImageLoadError(f"image file {str(path)!r} does not exist (check the path and the image root folder)")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"image file {str(path)!r} is empty (0 bytes); re-download or remove it")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixels(image.size, str(path), max_pixels)
                image.load()  # decode now, so truncated files fail here and not later
                return image.convert("RGB")
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"file {str(path)!r} is not an image PIL can read (wrong format or extension?)") from None
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"image {str(path)!r} has too many pixels: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ImageLoadError(f"image {str(path)!r} is corrupt or truncated ({err}); re-download or remove it") from None


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int | None) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"image {name!r} has an empty size {width}x{height}")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(
            f"image {name!r} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}; "
            "downscale it or raise max_pixels on the image processor"
        )
