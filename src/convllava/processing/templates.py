"""templates.py

Conversation templates: messages -> prompt string + the character spans that are trained.

Templates are immutable objects in an exact-name registry (no global mutable conversation as in LLaVA).
`vicuna_v1` reproduces the original `conv_vicuna_v1` (system prompt, `USER`/`ASSISTANT`, separators
" " and "</s>") character for character; `chat_template` defers to the tokenizer's own Jinja template,
for any other LLM. The trained spans are what `preprocess_v1` of the original trains: each assistant
answer (with the space before it) and its end token. LLaVA-1.6's `mistral_instruct` (`[INST]`) and
`chatml_direct` (ChatML) reproduce the original's `get_prompt` of those templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .messages import Message, RenderedPrompt, TemplateError, normalize_messages

__all__ = ["TEMPLATES", "Message", "RenderedPrompt", "Template", "TemplateError", "get_template", "normalize_messages"]


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
        system, msgs = _split_system(messages, self.system)
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
        _check_generation_prompt(msgs, add_generation_prompt)
        if add_generation_prompt:
            text += self.roles[1] + ":"
        return RenderedPrompt(text, tuple(spans))


@dataclass(frozen=True)
class InstTemplate:
    """LLaVA's `SeparatorStyle.LLAMA_2` (LLaVA-1.6 Mistral's `mistral_instruct`): `[INST] msg [/INST] answer </s>`,
    rounds joined by `sep`, a non-empty system prompt wrapped in `<<SYS>>` in front of the first user message.
    The generation prompt ends at `[/INST]`; each answer is trained with the space before it and `sep2`."""

    name: str
    system: str
    sep: str
    sep2: str

    def render(
        self, messages: Sequence[Mapping[str, Any]] | Sequence[Message], add_generation_prompt: bool = False, **_: Any
    ) -> RenderedPrompt:
        system, msgs = _split_system(messages, self.system)
        text, spans = "", []
        for index, message in enumerate(msgs):
            if message.role == "user":
                content = message.content
                if index == 0 and system:
                    content = f"<<SYS>>\n{system}\n<</SYS>>\n\n{content}"
                text += (self.sep if index else "") + f"[INST] {content} [/INST]"
            else:
                start = len(text)
                text += " " + message.content + " " + self.sep2
                spans.append((start, len(text)))
        _check_generation_prompt(msgs, add_generation_prompt)
        return RenderedPrompt(text, tuple(spans))


@dataclass(frozen=True)
class ChatMLTemplate:
    """LLaVA's `SeparatorStyle.MPT` with ChatML roles (LLaVA-1.6 34B's `chatml_direct`):
    `<|im_start|>system\n{system}<|im_end|><|im_start|>user\n{msg}<|im_end|><|im_start|>assistant\n...`, no
    newline between turns. Each answer is trained with its `<|im_end|>`."""

    name: str
    system: str

    def render(
        self, messages: Sequence[Mapping[str, Any]] | Sequence[Message], add_generation_prompt: bool = False, **_: Any
    ) -> RenderedPrompt:
        system, msgs = _split_system(messages, self.system)
        text, spans = f"<|im_start|>system\n{system}<|im_end|>", []
        for message in msgs:
            text += f"<|im_start|>{message.role}\n"
            start = len(text)
            text += message.content + "<|im_end|>"
            if message.role == "assistant":
                spans.append((start, len(text)))
        _check_generation_prompt(msgs, add_generation_prompt)
        if add_generation_prompt:
            text += "<|im_start|>assistant\n"
        return RenderedPrompt(text, tuple(spans))


def _split_system(messages: Sequence[Mapping[str, Any]] | Sequence[Message], default: str) -> tuple[str, list[Message]]:
    """(system prompt, the other messages): a leading system message replaces the template's own."""
    msgs = normalize_messages(messages)
    if msgs and msgs[0].role == "system":
        return msgs[0].content, msgs[1:]
    return default, msgs


def _check_generation_prompt(msgs: Sequence[Message], add_generation_prompt: bool) -> None:
    if add_generation_prompt and (not msgs or msgs[-1].role == "assistant"):
        raise TemplateError("add_generation_prompt needs the conversation to end with a user turn")


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


Template = SeparatorTemplate | InstTemplate | ChatMLTemplate | TokenizerChatTemplate

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
    # LLaVA-1.6 Mistral-7B's (`conv_mistral_instruct`): no system prompt, rounds joined by "" (the BOS is the
    # tokenizer's)
    "mistral_instruct": InstTemplate(name="mistral_instruct", system="", sep="", sep2="</s>"),
    # LLaVA-1.6 34B's (`conv_chatml_direct`, Nous-Hermes-2-Yi-34B)
    "chatml_direct": ChatMLTemplate(name="chatml_direct", system="Answer the questions."),
    "chat_template": TokenizerChatTemplate(),
}


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown conversation template {name!r}; known: {sorted(TEMPLATES)}") from None
