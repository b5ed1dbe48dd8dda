"""choices.py

Multiple-choice answer extraction and MMBench's circular evaluation (exact matching, no judge).

`lmms-eval` (default): `can_infer_option` (a lone capital letter token, unless "A" may be an article in a
longer answer; then letters wrapped as "A." "(A)" ":A" ...; always over the letters A-E, as the reference
does) and then `can_infer_text` (exactly one option text occurs in the lower-cased answer).
`vlmevalkit`: punctuation `.()[],:;!*#{}` turned into spaces; a lone choice letter among the last five
tokens; else "answer is X"; text matching only for answers at most twice as long as all option texts.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

_LMMS_AFFIXES = (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."),
                 (":", ""), (":", ","), (":", "."), (":", ")"), (":", ")."))  # fmt: skip
_VLM_PUNCT = re.compile(r"[.()\[\],:;!*#{}]")
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def _text_match(answer: str, options: Mapping[str, str]) -> str:
    lowered = answer.lower()
    hits = [k for k, v in options.items() if str(v).lower() in lowered]
    return hits[0] if len(hits) == 1 else ""


def _lmms_option(answer: str) -> str:
    if "Failed to obtain answer via API" in answer:
        return ""
    letters = "ABCDE"
    splits = [w.strip() for w in answer.split()]

    def count(pre: str = "", suf: str = "") -> int:
        return sum(pre + c + suf in splits for c in letters)

    if count() == 1:
        for ch in letters:
            if "A" in splits and len(splits) > 3:
                break  # "A" may be an article
            if ch in splits:
                return ch
    for pre, suf in _LMMS_AFFIXES:
        if count(pre, suf) == 1:
            for ch in letters:
                if pre + ch + suf in splits:
                    return ch
    return ""


def _vlmevalkit(answer: str, letters: str, options: Mapping[str, str]) -> str:
    splits = _VLM_PUNCT.sub(" ", answer).split()
    found = [i for i, w in enumerate(splits) if w in letters]
    if len(found) == 1 and found[0] > len(splits) - 5:
        return splits[found[0]]
    if not found and "Z" in splits:
        return "Z"
    match = _ANSWER_IS.search(answer)
    if match and match.group(1) in letters:
        return match.group(1)
    if options and len(answer) <= 2 * sum(len(str(v)) for v in options.values()):
        return _text_match(answer, options)
    return ""


def extract_choice(text: str, choices: str | Mapping[str, str] = "ABCD", protocol: str = "lmms-eval") -> str:
    """The chosen letter, or "" when none can be inferred. `choices`: letters, or {letter: option text}."""
    options = dict(choices) if isinstance(choices, Mapping) else {}
    letters = "".join(options) if options else str(choices)
    if protocol == "lmms-eval":
        return _lmms_option(text) or (_text_match(text, options) if options else "")
    if protocol == "vlmevalkit":
        return _vlmevalkit(text, letters, options)
    raise ValueError(f"unknown protocol {protocol!r}")


def mmbench_circular(rows: Iterable[Mapping[str, Any]], protocol: str = "lmms-eval") -> dict[str, Any]:
    """Rows of {index, answer, prediction, options?, category?}; copies share `index % 1_000_000`.

    A question scores 1 only if every rotation is answered right (exact matching: an answer no letter can be
    inferred from is wrong). Returns overall and per-category means over questions.
    """
    groups: dict[int, list[bool]] = defaultdict(list)
    category: dict[int, str] = {}
    for row in rows:
        group = int(row["index"]) % 1_000_000
        options = row.get("options") or "ABCD"
        groups[group].append(extract_choice(str(row["prediction"]), options, protocol) == str(row["answer"]))
        if int(row["index"]) < 1_000_000 or group not in category:
            category[group] = str(row.get("category", ""))
    if not groups:
        raise ValueError("mmbench_circular needs at least one row")
    hits = {g: float(all(v)) for g, v in groups.items()}
    per_category: dict[str, list[float]] = defaultdict(list)
    for g, hit in hits.items():
        per_category[category[g]].append(hit)
    return {
        "overall": sum(hits.values()) / len(hits),
        "categories": {c: sum(v) / len(v) for c, v in per_category.items()},
        "questions": len(hits),
    }
