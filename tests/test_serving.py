"""The OpenAI-compatible server on loopback with the tiny model: the official `openai` client (plain and
streamed), 50 concurrent requests batched without loss, and a corpus of bad inputs answered with 4xx."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

import convllava
from convllava.processing import load_image_bytes
from helpers import random_image

openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

GEN_TOKENS = 6


def data_url(image: Image.Image, fmt: str = "PNG", **save: object) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def raw_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model, processor):
    folder = tmp_path_factory.mktemp("served")
    tiny_model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return convllava.load(folder)


@pytest.fixture(scope="module")
def server(pipeline, tmp_path_factory):
    from convllava.serving import ServerLimits, create_app

    allowed = tmp_path_factory.mktemp("allowed")
    random_image(64, 64, seed=5).save(allowed / "ok.png")
    limits = ServerLimits(max_prompt_tokens=512, max_tokens=128, local_files_root=allowed, max_request_bytes=4_000_000)
    app = create_app(pipeline, "tiny", limits, max_batch_size=8, batch_wait_s=0.02)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    assert instance.started, "server did not start"
    yield {"url": f"http://127.0.0.1:{port}", "app": app}
    instance.should_exit = True
    thread.join(timeout=10)


def client(server):
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key="unused", max_retries=0, timeout=120)


def ask(server, question: str, image: Image.Image | None = None, stream: bool = False):
    content = [{"type": "text", "text": question}]
    if image is not None:
        content.insert(0, {"type": "image_url", "image_url": {"url": data_url(image)}})
    return client(server).chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], max_tokens=GEN_TOKENS, stream=stream
    )


def expected(pipeline, question: str, image: Image.Image | None = None) -> str:
    images = [image] if image is not None else []
    return pipeline.chat(question, images=images, max_new_tokens=GEN_TOKENS)


def test_plain_and_streamed_completions_with_an_image(server, pipeline):
    image = random_image(90, 120, seed=1)
    reply = ask(server, "What color is the square?", image)
    assert reply.choices[0].message.content == expected(pipeline, "What color is the square?", image)
    assert reply.usage.prompt_tokens > 16 and reply.object == "chat.completion"
    pieces = [c.choices[0].delta.content or "" for c in ask(server, "What color is the square?", image, stream=True)]
    assert "".join(pieces).strip() == reply.choices[0].message.content
    models = client(server).models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert httpx.get(server["url"] + "/health").json()["status"] == "ok"


def test_fifty_concurrent_requests_are_batched_and_all_answered(server, pipeline):
    questions = [
        (f"How many circles are there in picture {i}?", random_image(64, 64 + i, seed=100 + i)) for i in range(50)
    ]
    truth = [expected(pipeline, q, img) for q, img in questions]
    before = server["app"].state.batcher.batches_run
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda qi: ask(server, *qi).choices[0].message.content, questions))
    assert replies == truth
    assert server["app"].state.batcher.batches_run - before < 50  # requests were answered in batches


def _bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (16000, 16000)).save(buffer, format="PNG")  # 256 Mpx in a few kB
    return buffer.getvalue()


def _exif_rotated() -> bytes:
    image = Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def _encoded(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def test_bad_inputs_get_4xx_and_odd_valid_images_decode(server):
    jpeg = _encoded(random_image(100, 100), "JPEG")
    palette = Image.new("P", (32, 32))
    palette.info["transparency"] = 0
    gif_frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif = io.BytesIO()
    gif_frames[0].save(gif, format="GIF", save_all=True, append_images=gif_frames[1:])
    bad = {
        "truncated jpeg": (raw_url(jpeg[: len(jpeg) // 3], "image/jpeg"), 400, "truncated"),
        "0-byte file": ("data:image/png;base64,", 400, "empty"),
        "text labelled png": (raw_url(b"hello, not a picture"), 400, "not an image"),
        "decompression bomb": (raw_url(_bomb()), 400, "too many pixels"),
        "non-image data url": ("data:text/plain;base64,aGVsbG8=", 400, "data:image/"),
        "path outside folder": ("../../etc/passwd", 403, "outside the allowed folder"),
        "remote url": ("http://127.0.0.1:9/x.png", 400, "remote image URLs are disabled"),
    }
    for name, (url, status, message) in bad.items():
        body = {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What?"}]}]}  # fmt: skip
        response = httpx.post(server["url"] + "/v1/chat/completions", json=body, timeout=60)
        assert response.status_code == status, (name, response.text)
        assert message in response.json()["error"]["message"], name

    def post(body, **kw):
        return httpx.post(server["url"] + "/v1/chat/completions", timeout=60, **kw, **({"json": body} if body else {}))

    long_prompt = {"model": "tiny", "messages": [{"role": "user", "content": "word " * 2000}]}
    response = post(long_prompt)
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    assert (
        post({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000}).status_code
        == 400
    )
    assert post(None, content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    assert post(None, content=b"x" * 4_100_000).status_code == 413
    assert post({"model": "tiny", "messages": [{"role": "robot", "content": "hi"}]}).status_code == 400
    assert post({"model": "tiny", "messages": [{"role": "user", "content": "sneaky <image>"}]}).status_code == 400

    valid = {
        "cmyk jpeg": raw_url(_encoded(Image.new("CMYK", (32, 32), (0, 255, 0, 0)), "JPEG"), "image/jpeg"),
        "16-bit png": raw_url(_encoded(Image.fromarray(np.full((16, 16), 60000, dtype=np.uint16)), "PNG")),
        "palette with transparency": raw_url(_encoded(palette, "PNG")),
        "LA png": raw_url(_encoded(Image.new("LA", (16, 16), (200, 128)), "PNG")),
        "animated gif": raw_url(gif.getvalue(), "image/gif"),
        "exif rotated": raw_url(_exif_rotated(), "image/jpeg"),
        "allowed local file": "ok.png",
    }
    for name, url in valid.items():
        body = {"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What?"}]}]}  # fmt: skip
        response = post(body)
        assert response.status_code == 200, (name, response.text)
    assert ask(server, "Still serving?").choices[0].message.content is not None


def test_odd_formats_decode_correctly():
    sixteen = load_image_bytes(_encoded(Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), "PNG"))
    assert sixteen.mode == "RGB" and np.asarray(sixteen).min() == 255  # scaled, not clipped to 255 by accident
    mid = load_image_bytes(_encoded(Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)), "PNG"))
    assert abs(int(np.asarray(mid)[0, 0, 0]) - 128) <= 1
    rotated = load_image_bytes(_exif_rotated(), exif_transpose=True)
    assert rotated.size == (20, 40)  # 40x20 stored, shown upright as 20x40
    cmyk = np.asarray(load_image_bytes(_encoded(Image.new("CMYK", (8, 8), (0, 255, 0, 0)), "JPEG")))
    assert cmyk[0, 0, 0] > 200 and cmyk[0, 0, 1] < 60  # magenta ink -> red + blue


def test_browser_uploads_an_image_and_reads_the_answer(server, pipeline, tmp_path):
    """Headless Chromium (Debian's package) driven by Playwright, like a person using the page."""
    import os
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None or importlib_missing("playwright"):
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser test: install Debian's chromium and the dev extra (playwright)")
        pytest.skip("needs Debian's chromium and playwright")
    from playwright.sync_api import sync_playwright

    image_path = tmp_path / "upload.png"
    random_image(80, 100, seed=42).save(image_path)
    question = "What color is the square?"
    flags = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=flags)
        try:
            page = browser.new_page()
            page.goto(server["url"] + "/")
            page.set_input_files("#image", str(image_path))
            page.wait_for_function("document.getElementById('preview').src.startsWith('data:image')")
            page.fill("#question", question)
            page.click("#send")
            page.wait_for_selector(".answer[data-done='1']", timeout=60_000)
            shown = page.inner_text(".answer")
            page.screenshot(path=str(tmp_path / "page.png"))
        finally:
            browser.close()
    answer = pipeline.chat(question, images=[Image.open(image_path)], max_new_tokens=128)
    assert shown == f"Assistant: {answer}"


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None
