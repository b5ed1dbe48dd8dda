"""tokenizer.py

Tokenizer helpers: train a small Llama-style (SentencePiece-like BPE, `<s>` BOS) tokenizer offline with
`tokenizers` and wrap it as a Hugging Face `PreTrainedTokenizerFast`; add the image token to any tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ..constants import DEFAULT_IMAGE_TOKEN

#: Special tokens at fixed ids, as in the Llama / Vicuna vocabulary (unk 0, bos 1, eos 2); pad = unk.
SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<s>", "</s>")


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, image_token: bool = True, phrases: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """Train a byte-fallback-free BPE with a Metaspace pre-tokenizer (like Llama's) on `texts`.

    The result adds `<s>` in front of each sequence, pads with `<unk>` (id 0) and has `<image>` as an
    added special token with id `vocab_size` -- outside the LM vocabulary, as in the published models
    (`image_token=False` leaves it out, like the original Vicuna tokenizer). Each of `phrases` (fixed
    instructions such as a benchmark's answer-format suffix) becomes one token inside the vocabulary, so a
    small LM does not spend a dozen positions on text that never changes.
    """
    phrases = list(dict.fromkeys(phrases))
    if len(phrases) >= vocab_size - len(SPECIAL_TOKENS):
        raise ValueError(f"{len(phrases)} phrases do not fit a vocabulary of {vocab_size}; pass fewer phrases")
    texts = [_without(text, phrases) for text in texts]  # no BPE merges spent on the phrases' words
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    alphabet = sorted({ch for text in texts for ch in text.replace(" ", "▁")} | {"▁", "\n"})
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(phrases),
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # matched verbatim before normalisation and pre-tokenisation; spaces around a phrase stay with it
    tok.add_tokens([AddedToken(p, normalized=False, lstrip=True) for p in phrases])
    size = tok.get_vocab_size()
    if size < vocab_size:  # a small corpus cannot fill the vocabulary: pad it so ids are stable
        tok.add_tokens([f"<extra_{i}>" for i in range(vocab_size - size)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )
    if image_token:
        add_image_token(wrapped)
    return wrapped


def _without(text: str, phrases: Sequence[str]) -> str:
    for phrase in phrases:
        text = text.replace(phrase, " ")
    return text


def add_image_token(tokenizer: PreTrainedTokenizerBase, image_token: str = DEFAULT_IMAGE_TOKEN) -> int:
    """Register `image_token` as a special token (no-op if present) and return its id."""
    if image_token not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [image_token]})
    return tokenizer.convert_tokens_to_ids(image_token)
