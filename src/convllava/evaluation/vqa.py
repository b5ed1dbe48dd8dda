"""vqa.py

VQA accuracy as TextVQA / VQAv2 / VizWiz score it: the EvalAI answer normaliser (MMF's
`EvalAIAnswerProcessor`, used unchanged by LLaVA's m4c evaluator and lmms-eval) with its quirks kept --
the punctuation rule looks for a space next to the character anywhere in the input, the period regex's
look-behind typo removes any "." not followed by a digit, and `re.UNICODE` lands in the `count` argument
so at most 32 periods go -- and the 10-choose-9 averaged accuracy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

VQA_TASKS: tuple[str, ...] = ("textvqa", "vqav2", "vizwiz")
NUMBER_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})
PUNCTUATIONS: tuple[str, ...] = tuple(';/[]"{}()=+\\_-><@`,?!')
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: "(?!<=" is a look-ahead in the reference
_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")
_REFERENCE_PERIOD_COUNT = int(re.UNICODE)  # the reference passes re.UNICODE (32) as `count`
CONTRACTIONS: dict[str, str] = {
    "'ow'sat": "'ow's'at",
    "'ows'at": "'ow's'at",
    "I'dve": "I'd've",
    "Id've": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldn'tve": "couldn't've",
    "couldnt": "couldn't",
    "couldnt've": "couldn't've",
    "couldve": "could've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadn'tve": "hadn't've",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "he'dve": "he'd've",
    "hed": "he'd",
    "hed've": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "isnt": "isn't",
    "it'dve": "it'd've",
    "itd": "it'd",
    "itd've": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightn'tve": "mightn't've",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "shant": "shan't",
    "she'dve": "she'd've",
    "she's": "she's",
    "shed've": "she'd've",
    "shouldn'tve": "shouldn't've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldve": "should've",
    "somebody'd": "somebodyd",
    "somebody'dve": "somebody'd've",
    "somebodyd've": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someone'dve": "someone'd've",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "something'dve": "something'd've",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "there'dve": "there'd've",
    "thered": "there'd",
    "thered've": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "they'dve": "they'd've",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "we'dve": "we'd've",
    "wed've": "we'd've",
    "werent": "weren't",
    "weve": "we've",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "who'dve": "who'd've",
    "whod": "who'd",
    "whod've": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldn'tve": "wouldn't've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldve": "would've",
    "y'all'dve": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'allll": "y'all'll",
    "yall": "y'all",
    "yall'd've": "y'all'd've",
    "yall'll": "y'all'll",
    "you'dve": "you'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}


def _word_tokenize(text: str) -> str:
    return text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()


def process_punctuation(text: str) -> str:
    """EvalAI punctuation handling (shared with VLMEvalKit's yes/no extraction)."""
    out = text
    for p in PUNCTUATIONS:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, _REFERENCE_PERIOD_COUNT)


def _process_digit_article(text: str) -> str:
    words = [NUMBER_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_vqa_answer(text: str, task: str = "textvqa") -> str:
    """The EvalAI answer processor. `task="vqav2"` follows lmms-eval's VQAv2 path, which skips `word_tokenize`."""
    if task not in VQA_TASKS:
        raise ValueError(f"unknown VQA task {task!r}; one of {VQA_TASKS}")
    if task != "vqav2":
        text = _word_tokenize(text)
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(process_punctuation(text))


def vqa_accuracy(prediction: str, answers: Sequence[str], task: str = "textvqa", protocol: str = "lmms-eval") -> float:
    """mean over the 10 leave-one-out subsets of min(1, matches among the other 9 / 3).

    `protocol` "lmms-eval" and "llava" agree here (LLaVA's per-unique-answer form is the same number).
    """
    if protocol not in ("lmms-eval", "llava", "vlmevalkit"):
        raise ValueError(f"unknown protocol {protocol!r}")
    if not answers:
        raise ValueError("vqa_accuracy needs the ground-truth answers (10 for the standard sets)")
    gts = [normalize_vqa_answer(a, task) for a in answers]
    pred = normalize_vqa_answer(prediction.strip(), task)
    scores = []
    for i in range(len(gts)):
        matches = sum(1 for j, gt in enumerate(gts) if j != i and gt == pred)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)
