"""mmvet.py

MM-Vet: the judge prompt, the score parsing with its retry rules, and the capability aggregation.
Protocols: `"llava"` = the official `mm-vet_evaluator.py` (the paper's numbers; judge gpt-4-0613,
max_tokens 3), `"lmms-eval"` (default; header cell "gpt_query_prompt", no blank line, max_tokens 128) and
`"vlmevalkit"` (its re-wrapped prompt; the whole reply must be a float).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from .judge import Judge

CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
_INTRO = ("Compare the ground truth and prediction from AI models, to give a correctness score for the prediction. "
          "<AND> in the ground truth means it is totally right only when all elements in the ground truth are present "
          "in the prediction, and <OR> means it is totally right when any one element in the ground truth is present "
          "in the prediction. The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, "
          "0.9, or 1.0 (totally right). Just complete the last space of the correctness score.")  # fmt: skip
_MEME_GT = ("This meme is poking fun at the fact that the names of the countries Iceland and Greenland are misleading. "
            "Despite its name, Iceland is known for its beautiful green landscapes, while Greenland is mostly covered "
            "in ice and snow. The meme is saying that the person has trust issues because the names of these countries "
            "do not accurately represent their landscapes.")  # fmt: skip
_MEME_1 = ("The meme talks about Iceland and Greenland. It's pointing out that despite their names, Iceland is not very "
           "icy and Greenland isn't very green.")  # fmt: skip
_MEME_2 = ("The meme is using humor to point out the misleading nature of Iceland's and Greenland's names. Iceland, "
           "despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow. The text "
           "'This is why I have trust issues' is a playful way to suggest that these contradictions can lead to "
           "distrust or confusion. The humor in this meme is derived from the unexpected contrast between the names "
           "of the countries and their actual physical characteristics.")  # fmt: skip
_X = "What is x in the equation? | -1 <AND> -5 | "
_SHOTS = (f"{_X}x = 3 | 0.0\n{_X}x = -1 | 0.5\n{_X}x = -5 | 0.5\n{_X}x = -5 or 5 | 0.5\n{_X}x = -1 or x = -5 | 1.0\n"
          f"Can you explain this meme? | {_MEME_GT} | {_MEME_1} | 0.4\n"
          f"Can you explain this meme? | {_MEME_GT} | {_MEME_2} | 1.0\n")  # fmt: skip
_TABLE = "{} | Ground truth | Prediction | Correctness\n--- | --- | --- | ---\n"
RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "
_VLMEVALKIT_PROMPT = (
    '\n'
    'Compare the ground truth and prediction from AI models, to give a correctness score for the prediction.\n'
    '<AND> in the ground truth means it is totally right\n'
    'only when all elements in the ground truth are present in the prediction,\n'
    'and <OR> means it is totally right when any one element in the ground truth is present in the prediction.\n'
    'The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right).\n'
    'Just complete the last space of the correctness score.\n'
    '\n'
    'Question | Ground truth | Prediction | Correctness\n'
    '--- | --- | --- | ---\n'
    'What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0\n'
    'What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5\n'
    'What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5\n'
    'What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5\n'
    'What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0\n'
    'Can you explain this meme? | This meme is poking fun at the fact that the names of the countries\n'
    'Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,\n'
    'while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues\n'
    'because the names of these countries do not accurately represent their landscapes. |\n'
    "The meme talks about Iceland and Greenland. It's pointing out that despite their names,\n"
    "Iceland is not very icy and Greenland isn't very green. | 0.4\n"
    'Can you explain this meme? | This meme is poking fun at the fact that the names of the countries\n'
    'Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,\n'
    'while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues\n'
    'because the names of these countries do not accurately represent their landscapes. |\n'
    "The meme is using humor to point out the misleading nature of Iceland's and Greenland's names.\n"
    'Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow.\n'
    "The text 'This is why I have trust issues' is a playful way to suggest\n"
    'that these contradictions can lead to distrust or confusion.\n'
    'The humor in this meme is derived from the unexpected contrast between the names of the countries\n'
    'and their actual physical characteristics. | 1.0\n'
)  # fmt: skip
JUDGE_SETTINGS = {"llava": {"model": "gpt-4-0613", "max_tokens": 3}, "lmms-eval": {"model": "gpt-4o-2024-11-20",
                  "max_tokens": 128}, "vlmevalkit": {"model": "gpt-4-turbo", "max_tokens": 128}}  # fmt: skip


def mmvet_prompt(question: str, answer: str, prediction: str, protocol: str = "lmms-eval") -> str:
    """The judge query for one sample."""
    gt = answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    if protocol == "lmms-eval":
        return f"{_INTRO}\n{_TABLE.format('gpt_query_prompt')}{_SHOTS}\n{question} | {gt} | {prediction} |"
    if protocol in ("llava", "vlmevalkit"):
        head = _VLMEVALKIT_PROMPT if protocol == "vlmevalkit" else f"{_INTRO}\n\n{_TABLE.format('Question')}{_SHOTS}"
        return head + "\n" + " | ".join([question, gt, prediction, ""])
    raise ValueError(f"protocol must be 'lmms-eval', 'llava' or 'vlmevalkit', not {protocol!r}")


def parse_mmvet_score(reply: str, protocol: str = "lmms-eval") -> float | None:
    """A score in [0, 1] or None: the first space-separated token (official, lmms-eval after `.strip()`), or
    the whole reply (VLMEvalKit)."""
    text = reply.strip() if protocol == "lmms-eval" else reply
    token = text if protocol == "vlmevalkit" else text.split(" ")[0].strip()
    try:
        score = float(token)
    except ValueError:
        return None
    return score if 0.0 <= score <= 1.0 else None


def mmvet_judge(judge: Judge, question: str, answer: str, prediction: str, protocol: str = "lmms-eval") -> float:
    """Grade one sample with the reference's retry schedule; 0.0 when every try fails to parse.

    official: first ask at temperature 0, then re-ask with `RETRY_SUFFIX` at 0, 0.5, 1.0, 1.5 (its fifth re-ask is
    made and ignored; we skip it); lmms-eval: re-ask the same prompt at +0.5 until 2.0; VLMEvalKit: 5 tries at
    0.5 * i. An empty reply scores 0.0 at once under lmms-eval.
    """
    prompt = mmvet_prompt(question, answer, prediction, protocol)
    max_tokens = JUDGE_SETTINGS[protocol]["max_tokens"]
    if protocol == "llava":
        attempts = [(prompt, 0.0)] + [(prompt + RETRY_SUFFIX, 0.5 * i) for i in range(4)]
    elif protocol == "lmms-eval":
        attempts = [(prompt, 0.5 * i) for i in range(4)]
    else:
        attempts = [(prompt, 0.5 * i) for i in range(5)]
    for text, temperature in attempts:
        reply = judge.complete(text, temperature=temperature, max_tokens=max_tokens)
        if protocol == "lmms-eval" and not reply.strip():
            return 0.0
        score = parse_mmvet_score(reply, protocol)
        if score is not None:
            return score
    return 0.0


def mmvet_aggregate(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Rows of `capability` ("rec,ocr") and `score` -> total and per-capability scores (x100), and per exact
    capability combination ("ocr_spat"), as all three references compute them."""
    rows = list(rows)
    if not rows:
        raise ValueError("mmvet_aggregate needs at least one scored row")
    sums: dict[tuple[str, str], float] = defaultdict(float)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        caps = sorted({c.strip() for c in str(row["capability"]).split(",")})
        for key in [("cap", c) for c in CAPABILITIES if c in caps] + [("combo", "_".join(caps))]:
            sums[key] += float(row["score"])
            counts[key] += 1
    total = 100 * sum(float(r["score"]) for r in rows) / len(rows)
    capability = {c: 100 * sums["cap", c] / counts["cap", c] if counts["cap", c] else 0.0 for c in CAPABILITIES}
    combos = {k: 100 * sums[kind, k] / n for (kind, k), n in counts.items() if kind == "combo"}
    return {"total": total, "capabilities": capability, "integrations": combos}
