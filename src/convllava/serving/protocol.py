"""protocol.py

The OpenAI chat-completions request, validated: `parse_chat_request(body, limits)` -> our `Request`,
generation settings and flags, or an `ApiError` naming the field and the fix. Limits have safe defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..inference import Request
from .errors import ApiError
from .images import fetch_image


@dataclass(frozen=True)
class ServerLimits:
    max_request_bytes: int = 20_000_000
    max_image_bytes: int = 10_000_000
    max_image_pixels: int = 40_000_000
    max_images: int = 8
    max_prompt_tokens: int = 4096
    max_tokens: int = 1024
    default_max_tokens: int = 256
    allow_remote_images: bool = False
    local_files_root: Path | None = None


@dataclass
class ChatCall:
    request: Request
    generation: dict[str, Any]
    stream: bool
    model: str


def _number(body: dict, name: str, kind: type, low: float, high: float, default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind is int and not float(value).is_integer())
    ):
        raise ApiError(400, f"'{name}' must be a{'n integer' if kind is int else ' number'}", name)
    if not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}", name)
    return kind(value)


def parse_chat_request(body: Any, limits: ServerLimits, image_token: str = "<image>") -> ChatCall:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content} objects", "messages")
    if body.get("n", 1) != 1:
        raise ApiError(400, "only n=1 is supported", "n")
    ours: list[dict[str, str]] = []
    images = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            raise ApiError(400, f"messages[{index}] needs a role of system, user or assistant", "messages")
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ApiError(400, f"messages[{index}].content must be a string or a list of parts", "messages")
        pieces = []
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                if image_token in part["text"]:
                    raise ApiError(
                        400, f"text must not contain {image_token!r}; send images as image_url parts", "messages"
                    )
                pieces.append(part["text"])
            elif kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                if not isinstance(url, str):
                    raise ApiError(400, "an image_url part needs {'image_url': {'url': ...}}", "messages")
                if len(images) >= limits.max_images:
                    raise ApiError(400, f"at most {limits.max_images} images per request", "messages")
                images.append(
                    fetch_image(url, limits.max_image_pixels, limits.max_image_bytes, limits.allow_remote_images,
                                limits.local_files_root)
                )  # fmt: skip
                pieces.append(image_token)
            else:
                raise ApiError(400, f"messages[{index}] has an unsupported content part {part!r}", "messages")
        ours.append({"role": message["role"], "content": "\n".join(pieces)})
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = _number({"max_tokens": max_tokens}, "max_tokens", int, 1, limits.max_tokens, limits.default_max_tokens)
    temperature = _number(body, "temperature", float, 0.0, 2.0, 0.0)
    top_p = _number(body, "top_p", float, 0.0, 1.0, 1.0)
    generation: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": temperature > 0}
    if temperature > 0:
        generation.update(temperature=temperature, top_p=top_p)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false", "stream")
    return ChatCall(Request(ours, images), generation, stream, str(body.get("model", "")))
