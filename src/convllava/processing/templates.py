"""templates.py

Conversation templates: messages -> prompt string + the character spans that are trained.

Templates are immutable objects in an exact-name registry (no global mutable conversation as in LLaVA).
`vicuna_v1` reproduces the original `conv_vicuna_v1` (system prompt, `USER`/`ASSISTANT`, separators
" " and "</s>") character for character; `chat_template` defers to the tokenizer's own Jinja template,
for any other LLM. The trained spans are what `preprocess_v1` of the original trains: each assistant
answer (with the space before it) and its end token.
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


@dataclass(frozen=True)
class SeparatorTemplate:
    """LLaVA's `SeparatorStyle.TWO`: `{system}{sep}ROLE: msg{sep|sep2}...`, generation prompt `ROLE:`."""

    name: str
    system: str
    roles: tuple[str, str]
    sep: str
    sep2: str

    def render(
        self, messages: Sequence[Mapping[str, Any]] | Sequence[Message], add_generation_prompt: bool = False, **_: Any
    ) -> RenderedPrompt:
        msgs = normalize_messages(messages)
        system = self.system
        if msgs and msgs[0].role == "system":
            system, msgs = msgs[0].content, msgs[1:]
        text = system + self.sep
        spans: list[tuple[int, int]] = []
        for message in msgs:
            role = self.roles[0] if message.role == "user" else self.roles[1]
            text += role + ":"
            if message.role == "assistant":
                start = len(text)  # the space before the answer is trained, as in the original masking
                text += " " + message.content + self.sep2
                spans.append((start, len(text)))
            else:
                text += " " + message.content + self.sep
        if add_generation_prompt:
            if not msgs or msgs[-1].role == "assistant":
                raise TemplateError("add_generation_prompt needs the conversation to end with a user turn")
            text += self.roles[1] + ":"
        return RenderedPrompt(text, tuple(spans))


@dataclass(frozen=True)
class TokenizerChatTemplate:
    """The tokenizer's own `chat_template` (Jinja). Answer spans are found by rendering growing prefixes."""

    name: str = "chat_template"

    def render(
        self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False, *, tokenizer: Any = None
    ) -> RenderedPrompt:
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise TemplateError("template 'chat_template' needs a tokenizer that defines a chat_template")
        msgs = [{"role": m.role, "content": m.content} for m in normalize_messages(messages)]

        def render(prefix: list[dict[str, str]], gen: bool) -> str:
            return tokenizer.apply_chat_template(prefix, tokenize=False, add_generation_prompt=gen)

        spans: list[tuple[int, int]] = []
        for index, message in enumerate(msgs):
            if message["role"] != "assistant":
                continue
            before, through = render(msgs[:index], True), render(msgs[: index + 1], False)
            if not through.startswith(before):
                raise TemplateError(
                    f"the tokenizer's chat template is not prefix-stable at turn {index}; labels cannot be "
                    "masked by rendering prefixes. Use a template whose earlier turns do not change."
                )
            spans.append((len(before), len(through)))
        text = render(msgs, add_generation_prompt)
        if spans and not text.startswith(render(msgs[: _last_assistant(msgs) + 1], False)):
            raise TemplateError(
                "the tokenizer's chat template renders the full conversation differently from its prefix"
            )
        return RenderedPrompt(text, tuple(spans))


def _last_assistant(msgs: list[dict[str, str]]) -> int:
    return max(i for i, m in enumerate(msgs) if m["role"] == "assistant")


Template = SeparatorTemplate | TokenizerChatTemplate

#: Exact-name registry of conversation templates.
TEMPLATES: dict[str, Template] = {
    "vicuna_v1": SeparatorTemplate(
        name="vicuna_v1",
        system=(
            "A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's questions."
        ),
        roles=("USER", "ASSISTANT"),
        sep=" ",
        sep2="</s>",
    ),
    # LLaVA-1.5's `conv_llava_v1`: same separators, "human" instead of "user" in the system prompt.
    "llava_v1": SeparatorTemplate(
        name="llava_v1",
        system=(
            "A chat between a curious human and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the human's questions."
        ),
        roles=("USER", "ASSISTANT"),
        sep=" ",
        sep2="</s>",
    ),
    "chat_template": TokenizerChatTemplate(),
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown conversation template {name!r}; known: {sorted(TEMPLATES)}") from None
