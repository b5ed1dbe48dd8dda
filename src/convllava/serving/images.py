"""images.py

Turn an OpenAI `image_url` content part into a PIL image, safely: `data:` URLs are decoded in memory;
`http(s)` URLs are refused unless remote images are allowed; local paths only inside the allowed folder.
Every failure is an `ApiError` (400) that says what to send instead.
"""

from __future__ import annotations

import base64
import binascii
import urllib.request
from pathlib import Path

from PIL import Image

from ..processing import ImageLoadError, load_image, load_image_bytes
from .errors import ApiError


def fetch_image(
    url: str,
    max_pixels: int,
    max_bytes: int,
    allow_remote: bool = False,
    local_root: Path | None = None,
    timeout_s: float = 10.0,
) -> Image.Image:
    try:
        if url.startswith("data:"):
            header, _, payload = url.partition(",")
            if not header.endswith(";base64") or not header[5:].startswith("image/"):
                raise ApiError(400, "image data URLs must look like data:image/<type>;base64,<data>", "image_url")
            try:
                data = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "the image data URL is not valid base64", "image_url") from None
            if len(data) > max_bytes:
                raise ApiError(413, f"the image is {len(data)} bytes, over the limit of {max_bytes}", "image_url")
            return load_image_bytes(data, "data: URL image", max_pixels, exif_transpose=True)
        if url.startswith(("http://", "https://")):
            if not allow_remote:
                raise ApiError(
                    400, "remote image URLs are disabled on this server; send the image as a data: URL "
                    "(or start the server with --allow-remote-images)", "image_url",
                )  # fmt: skip
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                data = response.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ApiError(413, f"the remote image is over the limit of {max_bytes} bytes", "image_url")
            return load_image_bytes(data, url, max_pixels, exif_transpose=True)
        return _local(url.removeprefix("file://"), max_pixels, local_root)
    except ImageLoadError as err:
        raise ApiError(400, f"unusable image: {err}", "image_url") from None
    except OSError as err:
        raise ApiError(400, f"could not fetch the image: {err}", "image_url") from None


def _local(path_text: str, max_pixels: int, root: Path | None) -> Image.Image:
    if root is None:
        raise ApiError(
            400, "local image paths are disabled on this server; send a data: URL "
            "(or start the server with --allow-local-files DIR)", "image_url",
        )  # fmt: skip
    root = root.resolve()
    path = (root / path_text).resolve()
    if not path.is_relative_to(root):
        raise ApiError(403, f"image path {path_text!r} is outside the allowed folder", "image_url")
    return load_image(path, max_pixels, exif_transpose=True)
