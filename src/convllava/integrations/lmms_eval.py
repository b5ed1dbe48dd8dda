"""lmms_eval.py

The lmms-eval model `convllava` (entry point group `lmms_eval.models`, see pyproject.toml), so
`lmms-eval --model convllava --model_args pretrained=PATH[,device=cuda,dtype=bfloat16,batch_size=8] --tasks ...`
evaluates any model `convllava.load` opens. All three request types are served; `loglikelihood` returns the
mean negative log-likelihood of the continuation (what the in-tree LLaVA returns, so `multiple_choice` tasks,
which take the argmin, pick the likeliest option).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest
from tqdm.auto import tqdm

from .. import load
from ..inference.pipeline import as_request

MODEL_ID = "convllava"


def manifests() -> list[ModelManifest]:
    """Entry-point payload: our simple (non-chat) model class."""
    return [ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.ConvLlavaLmms", aliases=("conv_llava",))]


def _flatten(visuals: Any) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, Sequence) and not isinstance(visuals, str):
        return [v for item in visuals for v in _flatten(item)]
    return [visuals]


def _generation(gen_kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    until = gen_kwargs.get("until") or []
    until = [until] if isinstance(until, str) else list(until)
    temperature = float(gen_kwargs.get("temperature", 0) or 0)
    kwargs: dict[str, Any] = {"max_new_tokens": int(gen_kwargs.get("max_new_tokens", 1024))}
    if temperature > 0 or gen_kwargs.get("do_sample"):
        kwargs.update(do_sample=True, temperature=temperature or 1.0, top_p=float(gen_kwargs.get("top_p") or 1.0))
    else:
        kwargs["do_sample"] = False
    if int(gen_kwargs.get("num_beams", 1) or 1) > 1:
        kwargs["num_beams"] = int(gen_kwargs["num_beams"])
    return kwargs, until


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text.split(stop)[0]
    return text


class LoglikelihoodResult(str):
    """`(value, is_greedy)` that survives lmms-eval 0.7.3's `unwrap_generation_output`, which turns every
    non-string result into `str(result)` (breaking `multiple_choice` tasks for tuple-returning models): a `str`
    passes through untouched (also its reasoning-tag stripping), and this one still unpacks as the tuple the
    task's `process_results` expects."""

    def __new__(cls, value: float, is_greedy: bool) -> LoglikelihoodResult:
        obj = super().__new__(cls, f"({value!r}, {is_greedy!r})")
        obj.value, obj.is_greedy = value, is_greedy
        return obj

    def __iter__(self):  # type: ignore[override]
        return iter((self.value, self.is_greedy))

    def __getitem__(self, index):  # type: ignore[override]
        return (self.value, self.is_greedy)[index]

    def strip(self, chars: str | None = None) -> LoglikelihoodResult:  # reasoning-tag stripping ends in .strip()
        return self


class ConvLlavaLmms(lmms):
    """lmms-eval "simple" model over a `ConvLlavaPipeline`."""

    is_simple = True

    def __init__(self, pretrained: str, device: str | None = None, dtype: str | None = None,
                 batch_size: int | str = 1, **_: Any) -> None:  # fmt: skip
        super().__init__()
        self.pipeline = load(pretrained, dtype=dtype, device=device)
        self.batch_size_per_gpu = int(batch_size)

    def _doc_visuals(self, doc_to_visual: Any, doc_id: int, task: str, split: str) -> list:
        return _flatten(doc_to_visual(self.task_dict[task][split][doc_id]))

    def generate_until(self, requests: list[Instance]) -> list[str]:
        answers: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):  # one generate call per batch of identical settings
            groups.setdefault(repr(sorted(request.args[1].items(), key=str)), []).append(i)
        bar = tqdm(total=len(requests), desc="convllava generate", disable=self.rank != 0)
        for indices in groups.values():
            kwargs, until = _generation(requests[indices[0]].args[1])
            for start in range(0, len(indices), self.batch_size_per_gpu):
                chunk = indices[start : start + self.batch_size_per_gpu]
                batch = []
                for i in chunk:
                    context, _, doc_to_visual, doc_id, task, split = requests[i].args
                    batch.append(as_request(context, self._doc_visuals(doc_to_visual, doc_id, task, split)))
                for i, text in zip(chunk, self.pipeline.generate(batch, **kwargs), strict=True):
                    answers[i] = _cut(text, until)
                    self.cache_hook.add_partial("generate_until", (requests[i].args[0], requests[i].args[1]), text)
                bar.update(len(chunk))
        bar.close()
        return [a or "" for a in answers]

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        results = []
        for request in tqdm(requests, desc="convllava loglikelihood", disable=self.rank != 0):
            context, target, doc_to_visual, doc_id, task, split = request.args
            doc = self.task_dict[task][split][doc_id]
            continuation = target if isinstance(target, str) else target(doc)
            visuals = self._doc_visuals(doc_to_visual, doc_id, task, split)
            total, count, greedy = self.pipeline.loglikelihood(as_request(context, visuals), continuation)
            results.append(LoglikelihoodResult(-total / count, greedy))
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        return self.generate_until(requests)
