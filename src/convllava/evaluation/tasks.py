"""tasks.py

The benchmark registry of the evaluation runner (`TASKS`, by exact name). A `Task` says how to build the
prompt and the images of one row (lmms-eval's default pre/post prompts), what of the row to keep for scoring
(`target`), how many tokens to generate, and how to score the saved predictions under a protocol.
Row fields accept the names used by lmms-eval's Hub datasets, VLMEvalKit TSVs and LLaVA's eval JSONL.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import metrics as M
from .formats import load_doc_image

SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."
REC_PROMPT = ("Bounding box coordinates are specified in the format (top-left x, top-left y, bottom-right x, "
              "bottom-right y). All values are floating point numbers bounded between 0 and 1. Please provide the "
              "bounding box coordinate of the region this sentence describes: ")  # fmt: skip
MMVET_PRE = (
    "First please perform reasoning, and think step by step to provide best answer to the following question: \n\n"
)
Rows = list[dict[str, Any]]


def field(doc: dict[str, Any], *names: str, default: Any = None) -> Any:
    """The first present field among `names` (the formats name the same thing differently)."""
    for name in names:
        if doc.get(name) is not None:
            return doc[name]
    if default is not None:
        return default
    raise ValueError(f"row has none of the fields {', '.join(names)} (it has {', '.join(sorted(doc))})")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def default_images(doc: dict[str, Any], folder: Any) -> list:
    """The row's `image` / `image_path` / `images` value(s), decoded."""
    value = field(doc, "image", "image_path", "images")
    values = value if isinstance(value, list) else [value]
    return [load_doc_image(v, folder) for v in values]


@dataclass(frozen=True)
class Task:
    """One benchmark: prompt, images, what to keep for scoring, generation length, scorer."""

    name: str
    prompt: Callable[[dict[str, Any]], str]
    target: Callable[[dict[str, Any]], dict[str, Any]]
    score: Callable[[Rows, str], dict[str, Any]]
    headline: str
    max_new_tokens: int = 16
    images: Callable[[dict[str, Any], Any], list] = default_images
    #: grades one row with a judge model: (judge, target, prediction, protocol) -> JSON-able grade
    judge_row: Callable[[Any, dict[str, Any], str, str], Any] | None = None
    #: adds fields computed from the loaded images (and runner options) before `target` is taken
    prepare: Callable[[dict[str, Any], list, dict[str, Any]], dict[str, Any]] | None = None


# --- scorers over saved rows {"prediction", "target"} ---------------------------------------------------------
def _pope(rows: Rows, protocol: str) -> dict[str, Any]:
    result = M.pope_metrics([r["prediction"] for r in rows], [r["target"]["answer"] for r in rows], protocol)
    by_category: dict[str, Rows] = defaultdict(list)
    for r in rows:
        by_category[r["target"].get("category") or "all"].append(r)
    if len(by_category) > 1:
        result["categories"] = {c: _pope(v, protocol) for c, v in sorted(by_category.items())}
    return result


def _mean_of(fn: Callable[[dict[str, Any], str, str], float], key: str) -> Callable[[Rows, str], dict[str, Any]]:
    return lambda rows, protocol: {key: _mean([float(fn(r["target"], r["prediction"], protocol)) for r in rows])}


def _refcoco(rows: Rows, protocol: str) -> dict[str, Any]:
    ious, centers = [], []
    for r in rows:
        t = r["target"]
        box = M.parse_box(r["prediction"], protocol)
        if t.get("frame") == "padded":  # a pad-mode model answers in the padded square's frame
            box = M.padded_to_original(box, t["width"], t["height"])
        ious.append(M.box_iou(t["bbox"], box))
        centers.append(float(M.center_accuracy(t["bbox"], box)))
    result = {f"acc@{k}": _mean([float(i >= k) for i in ious]) for k in (0.1, 0.3, 0.5, 0.7, 0.9)}
    return {"iou": _mean(ious), **result, "center_acc": _mean(centers)}


def _mmbench(rows: Rows, protocol: str) -> dict[str, Any]:
    return M.mmbench_circular(
        [{"index": r["target"]["index"], "answer": r["target"]["answer"], "options": r["target"]["options"],
          "category": r["target"].get("category", ""), "prediction": r["prediction"]} for r in rows], protocol)  # fmt: skip


def _mmvet_score(rows: Rows, protocol: str) -> dict[str, Any]:
    return M.mmvet_aggregate([{"capability": r["target"]["capability"], "score": r["judgement"]} for r in rows])


def _llavabench_score(rows: Rows, protocol: str) -> dict[str, Any]:
    return M.llavabench_aggregate([{"scores": r["judgement"], "category": r["target"]["category"]} for r in rows])


# --- prompts and targets ----------------------------------------------------------------------------------------
def _mme_prompt(doc: dict[str, Any]) -> str:
    return field(doc, "question").strip().replace(" Please answer yes or no.", "") + SHORT


def _options(doc: dict[str, Any], letters: str = "ABCDE") -> dict[str, str]:
    return {c: str(doc[c]) for c in letters if doc.get(c) not in (None, "", "nan")}


def _mmbench_prompt(doc: dict[str, Any]) -> str:
    listed = "There are several options:\n" + "\n".join(f"{k}. {v}" for k, v in _options(doc).items())
    hint = doc.get("hint")
    head = f"{hint} {doc['question']}" if hint not in (None, "", "nan") else doc["question"]
    return f"{head} {listed}{LETTER}"


def _sqa_prompt(doc: dict[str, Any]) -> str:
    context = f"Context: {doc['hint']}\n" if doc.get("hint") else ""
    choices = "\n".join(f"{string.ascii_uppercase[i]}. {c}" for i, c in enumerate(doc["choices"]))
    return f"{context}{doc['question']}\n{choices}{LETTER}"


def _seed_prompt(doc: dict[str, Any]) -> str:
    choices = "\n".join(f"{c.upper()}. {doc[f'choice_{c}']}" for c in "abcd")
    return f"{doc['question']}\n{choices}{LETTER}"


def _mmmu_images(doc: dict[str, Any], folder: Any) -> list:
    prompt = M.mmmu_prompt(doc["question"], doc["question_type"], doc.get("options", "[]"))
    keys = sorted({t.strip("<>").replace(" ", "_") for t in re.findall(r"<image \d+>", prompt)})
    return [load_doc_image(doc[k], folder) for k in keys]


def _refcoco_prepare(doc: dict[str, Any], images: list, options: dict[str, Any]) -> dict[str, Any]:
    """Ground truth normalised by the original image: COCO `bbox` (x, y, w, h pixels, lmms-eval's Hub data) or
    `box` (already normalised x1, y1, x2, y2)."""
    width, height = images[0].size
    box = doc["box"] if doc.get("box") is not None else M.xywh_to_normalized(doc["bbox"], width, height)
    return {"_box": [float(v) for v in box], "_width": width, "_height": height,
            "_frame": options.get("box_frame", "original")}  # fmt: skip


def _refcoco_target(doc: dict[str, Any]) -> dict[str, Any]:
    return {"bbox": doc["_box"], "width": doc["_width"], "height": doc["_height"], "frame": doc["_frame"]}


def _yes_no(doc: dict[str, Any]) -> str:
    return str(field(doc, "answer", "label")).strip().lower()


TASKS: dict[str, Task] = {
    "pope": Task("pope", lambda d: field(d, "question", "text") + SHORT,
                 lambda d: {"answer": _yes_no(d), "category": d.get("category")}, _pope, "f1", 128),
    "mme": Task("mme", _mme_prompt, lambda d: {"answer": _yes_no(d), "category": d["category"],
                "image": str(field(d, "question_id", "image_path", "image_id"))},
                lambda rows, p: M.mme_scores([{**r["target"], "prediction": r["prediction"]} for r in rows], p),
                "perception", 16),
    "textvqa": Task("textvqa", lambda d: d["question"] + SHORT, lambda d: {"answers": list(d["answers"])},
                    _mean_of(lambda t, p, proto: M.vqa_accuracy(p, t["answers"], "textvqa", proto), "accuracy"),
                    "accuracy", 16),
    "vqav2": Task("vqav2", lambda d: d["question"] + SHORT, lambda d: {"answers": [
                  a["answer"] if isinstance(a, dict) else a for a in d["answers"]]},
                  _mean_of(lambda t, p, proto: M.vqa_accuracy(p, t["answers"], "vqav2", proto), "accuracy"),
                  "accuracy", 16),
    "vizwiz": Task("vizwiz", lambda d: d["question"] + "\nWhen the provided information is insufficient, respond "
                   "with 'Unanswerable'." + SHORT, lambda d: {"answers": list(d["answers"])},
                   _mean_of(lambda t, p, proto: M.vqa_accuracy(p, t["answers"], "vizwiz", proto), "accuracy"),
                   "accuracy", 16),
    "docvqa": Task("docvqa", lambda d: d["question"] + SHORT, lambda d: {"answers": list(d["answers"])},
                   _mean_of(lambda t, p, proto: M.anls(p, t["answers"]), "anls"), "anls", 32),
    "gqa": Task("gqa", lambda d: d["question"] + SHORT, lambda d: {"answer": d["answer"]},
                _mean_of(lambda t, p, proto: M.gqa_correct(p, t["answer"], proto), "accuracy"), "accuracy", 16),
    "scienceqa": Task("scienceqa", _sqa_prompt, lambda d: {"answer": int(d["answer"]), "n": len(d["choices"])},
                      _mean_of(lambda t, p, proto: M.scienceqa_correct(p, t["answer"], t["n"], proto), "accuracy"),
                      "accuracy", 16),
    "seed": Task("seed", _seed_prompt, lambda d: {"answer": d["answer"]},
                 _mean_of(lambda t, p, proto: M.seed_correct(p, t["answer"], proto), "accuracy"), "accuracy", 16),
    "realworldqa": Task("realworldqa", lambda d: d["question"].strip(), lambda d: {"answer": d["answer"]},
                        _mean_of(lambda t, p, proto: M.realworldqa_correct(p, t["answer"], proto), "accuracy"),
                        "accuracy", 16),
    "mmbench": Task("mmbench", _mmbench_prompt, lambda d: {"index": int(d["index"]), "answer": d["answer"],
                    "options": _options(d), "category": d.get("category", "")}, _mmbench, "overall", 64),
    "mmmu": Task("mmmu", lambda d: M.mmmu_prompt(d["question"], d["question_type"], d.get("options", "[]")),
                 lambda d: {k: d[k] for k in ("id", "question_type", "options", "answer")},
                 lambda rows, p: M.mmmu_scores([{**r["target"], "prediction": r["prediction"]} for r in rows], p),
                 "overall.acc", 128, _mmmu_images),
    "refcoco": Task("refcoco", lambda d: REC_PROMPT + str(field(d, "answer", "expression", "sentence")),
                    _refcoco_target, _refcoco, "acc@0.5", 64, prepare=_refcoco_prepare),
    "mmvet": Task("mmvet", lambda d: MMVET_PRE + d["question"], lambda d: {"question": d["question"],
                  "answer": d["answer"], "capability": field(d, "capability", "category")}, _mmvet_score, "total", 1024,
                  judge_row=lambda j, t, p, proto: M.mmvet_judge(j, t["question"], t["answer"], p, proto)),
    "llava_bench": Task("llava_bench", lambda d: d["question"], lambda d: {"question": d["question"],
                        "caption": d.get("caption", ""), "reference": field(d, "gpt_answer", "gpt4_ans"),
                        "category": d.get("category", "")}, _llavabench_score, "all.relative", 1024,
                        judge_row=lambda j, t, p, proto: M.llavabench_judge(j, t["caption"], t["question"],
                                                                            t["reference"], p, proto)[0]),
}  # fmt: skip


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(sorted(TASKS))}")
    return TASKS[name]


def headline(task: str, metrics: dict[str, Any]) -> float | None:
    """The task's headline number from a metrics dict (a key, or a dotted path such as "overall.acc")."""
    if task not in TASKS:
        return None
    name = TASKS[task].headline
    value: Any = metrics.get(name)
    if name not in metrics:
        value = metrics
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
    return value if isinstance(value, int | float) else None
