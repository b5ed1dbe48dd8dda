"""messages.py

Chat messages for the conversation templates: the `Message` / `RenderedPrompt` types, and `normalize_messages`,
which accepts chat messages (`role` / `content`, content as a string or HF / OpenAI parts) or LLaVA turns
(`from` / `value`) and checks their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..constants import DEFAULT_IMAGE_TOKEN

ROLES: tuple[str, ...] = ("system", "user", "assistant")
#: The LLaVA data format names speakers with `from`; map them onto chat roles.
_LLAVA_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class TemplateError(ValueError):
    """A conversation cannot be rendered (malformed roles, or a template that is not prefix-stable)."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt string and the [start, end) character spans whose tokens carry a loss."""

    text: str
    trained_spans: tuple[tuple[int, int], ...] = ()


def _content_to_text(content: Any, image_token: str) -> str:
    """Content as a string, or as a list of {"type": "text"|"image", ...} parts (HF / OpenAI style)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        pieces = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("image", "image_url"):
                pieces.append(image_token)
            elif kind == "text":
                pieces.append(str(part.get("text", "")))
            else:
                raise TemplateError(f"unknown content part {part!r}; expected type 'text' or 'image'")
        return "\n".join(pieces)
    raise TemplateError(f"message content must be a string or a list of parts, got {type(content).__name__}")


def normalize_messages(messages: Iterable[Mapping[str, Any]], image_token: str = DEFAULT_IMAGE_TOKEN) -> list[Message]:
    """Accept chat messages (`role`/`content`) or LLaVA turns (`from`/`value`); check the role order.

    An optional leading system message, then user and assistant alternating, starting with the user.
    """
    result: list[Message] = []
    for index, raw in enumerate(messages):
        if isinstance(raw, Message):
            result.append(raw)
            continue
        if "role" in raw:
            role, content = str(raw["role"]), raw.get("content", "")
        elif "from" in raw:
            role, content = _LLAVA_ROLES.get(str(raw["from"]), str(raw["from"])), raw.get("value", "")
        else:
            raise TemplateError(f"message {index} has neither 'role' nor 'from': {dict(raw)!r}")
        if role not in ROLES:
            raise TemplateError(f"message {index} has unknown role {role!r}; expected one of {ROLES}")
        result.append(Message(role, _content_to_text(content, image_token)))
    body = result[1:] if result and result[0].role == "system" else result
    for index, message in enumerate(body):
        expected = "user" if index % 2 == 0 else "assistant"
        if message.role != expected:
            raise TemplateError(
                f"turn {index} is {message.role!r} where {expected!r} was expected: after an optional system "
                "message, turns must alternate user / assistant starting with the user"
            )
    return result
