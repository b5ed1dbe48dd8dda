"""Bad image input gives a clear ImageLoadError (a ValueError) naming the file, never a PIL crash."""

from __future__ import annotations

import pytest

from convllava import ConvLlavaImageProcessor, ImageLoadError, load_image
from helpers import random_image


def test_good_image_is_decoded_to_rgb(tmp_path):
    path = tmp_path / "ok.png"
    random_image(20, 30).convert("RGBA").save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (30, 20)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jpg", b"", "empty"),
        ("text.jpg", b"this is not an image at all", "not an image"),
    ],
)
def test_unusable_files_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=message) as info:
        load_image(path)
    assert name in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_file(tmp_path):
    full = tmp_path / "full.jpg"
    random_image(200, 200).save(full, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(ImageLoadError, match="truncated") as info:
        load_image(truncated)
    assert "truncated.jpg" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    random_image(100, 120).save(path)
    with pytest.raises(ImageLoadError, match=r"too many pixels: 120x100 = 12000, over the limit of 10000") as info:
        load_image(path, max_pixels=10_000)
    assert "big.png" in str(info.value)
    processor = ConvLlavaImageProcessor(size=64, max_pixels=10_000)
    with pytest.raises(ImageLoadError, match=r"big\.png"):
        processor(str(path))


def test_wrong_type():
    with pytest.raises(ImageLoadError, match="expected an image path"):
        load_image(42)
