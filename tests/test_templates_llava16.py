"""LLaVA-1.6's `mistral_instruct` ([INST]) and `chatml_direct` (ChatML) templates: prompt strings equal to the
original `Conversation.get_prompt` of those templates (re-implemented here from its LLAMA_2 and MPT branches), and
the trained spans."""

from __future__ import annotations

import pytest

from convllava.processing import TemplateError, get_template

TURNS = ["<image>\nWhat is this?", "A red square.", "How many circles?", "Three circles."]


def original_llama_2(system, sep, sep2, messages):  # SeparatorStyle.LLAMA_2 (LLaVA v1.2)
    def wrap_sys(msg):
        return f"<<SYS>>\n{msg}\n<</SYS>>\n\n" if len(msg) > 0 else msg

    ret = ""
    for i, message in enumerate(messages):
        if message:
            if i == 0:
                message = wrap_sys(system) + message
            ret += sep + f"[INST] {message} [/INST]" if i % 2 == 0 else " " + message + " " + sep2
    return ret.lstrip(sep) if sep else ret


def original_mpt(system, roles, sep, messages):  # SeparatorStyle.MPT
    ret = system + sep
    for i, message in enumerate(messages):
        ret += roles[i % 2] + message + sep if message else roles[i % 2]
    return ret


def _messages(turns):
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_mistral_instruct_is_the_original(n):
    template = get_template("mistral_instruct")
    generate = n % 2 == 1  # a prompt that ends with the user's turn asks for the answer
    rendered = template.render(_messages(TURNS[:n]), add_generation_prompt=generate)
    assert rendered.text == original_llama_2("", "", "</s>", [*TURNS[:n], *([None] if generate else [])])
    answers = [f" {t} </s>" for t in TURNS[1:n:2]]
    assert [rendered.text[a:b] for a, b in rendered.trained_spans] == answers
    with_system = template.render([{"role": "system", "content": "Be brief."}, *_messages(TURNS[:1])], True).text
    assert with_system == original_llama_2("Be brief.", "", "</s>", [TURNS[0], None])
    assert with_system.startswith("[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\n")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_chatml_direct_is_the_original(n):
    roles = ("<|im_start|>user\n", "<|im_start|>assistant\n")
    generate = n % 2 == 1
    rendered = get_template("chatml_direct").render(_messages(TURNS[:n]), add_generation_prompt=generate)
    expected = original_mpt("<|im_start|>system\nAnswer the questions.", roles, "<|im_end|>",
                            [*TURNS[:n], *([None] if generate else [])])  # fmt: skip
    assert rendered.text == expected
    assert [rendered.text[a:b] for a, b in rendered.trained_spans] == [f"{t}<|im_end|>" for t in TURNS[1:n:2]]


def test_generation_prompt_needs_a_user_turn_last():
    for name in ("mistral_instruct", "chatml_direct"):
        with pytest.raises(TemplateError, match="end with a user turn"):
            get_template(name).render(_messages(TURNS[:2]), add_generation_prompt=True)
