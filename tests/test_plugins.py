"""The lmms-eval and VLMEvalKit plugins, run by the real packages (lmms-eval 0.7.3, ms-vlmeval 0.0.20) on the
tiny model: `lmms-eval --model convllava` on a generation task and a multiple-choice (loglikelihood) task, and
VLMEvalKit's `infer_data_job` on a small MCQ TSV. Marked `plugins`: `.ci/run` installs both packages in their
own stage (they need torchvision) and sets CONVLLAVA_REQUIRE_PLUGINS=1 so a missing package fails there."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convllava.inference import ConvLlavaPipeline
from convllava.inference.pipeline import as_request
from helpers import random_image

pytestmark = pytest.mark.plugins


def require(module: str):
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CONVLLAVA_REQUIRE_PLUGINS") == "1":
            raise
        pytest.skip(f"{module} is installed only in the plugins stage of .ci/run")


TASK_UTILS = """
def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]

def doc_to_text(doc):
    return doc["question"] + "\\nAnswer the question using a single word or phrase."

def doc_to_target(doc):
    return ["yes", "no"].index(doc["answer"])

def process_results(doc, results):
    return {"exact": float(results[0].strip().lower() == doc["answer"])}
"""


def _lmms_tasks(folder: Path, data: Path) -> None:
    common = f"dataset_path: parquet\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
    common += "doc_to_visual: !function utils.doc_to_visual\ndoc_to_text: !function utils.doc_to_text\n"
    (folder / "utils.py").write_text(TASK_UTILS)
    (folder / "gen.yaml").write_text(
        f"task: tiny_yesno_gen\n{common}output_type: generate_until\ndoc_to_target: answer\n"
        'generation_kwargs:\n  max_new_tokens: 4\n  until: ["\\n"]\nprocess_results: !function utils.process_results\n'
        "metric_list:\n  - metric: exact\n    aggregation: mean\n    higher_is_better: true\n"
    )
    (folder / "mc.yaml").write_text(
        f'task: tiny_yesno_mc\n{common}output_type: multiple_choice\ndoc_to_choice: ["yes", "no"]\n'
        "doc_to_target: !function utils.doc_to_target\nmetric_list:\n  - metric: acc\n"
    )


def test_lmms_eval_runs_our_model_on_generation_and_multiple_choice(tmp_path, saved_tiny, tiny_model, processor):
    require("lmms_eval")
    from datasets import Dataset, Features, Image, Value
    from lmms_eval.models import get_model

    from convllava.integrations.lmms_eval import ConvLlavaLmms

    assert get_model("convllava") is ConvLlavaLmms  # resolved through our `lmms_eval.models` entry point
    images = [random_image(40, 56, seed=i) for i in range(4)]
    answers = ["yes", "no", "no", "yes"]
    features = Features({"question": Value("string"), "answer": Value("string"), "image": Image()})
    Dataset.from_dict({"question": ["Is there a cat?"] * 4, "answer": answers, "image": images}, features=features
                      ).to_parquet(tmp_path / "yesno.parquet")  # fmt: skip
    (tmp_path / "tasks").mkdir()
    _lmms_tasks(tmp_path / "tasks", tmp_path / "yesno.parquet")
    command = [sys.executable, "-m", "lmms_eval", "eval", "--model", "convllava", "--model_args",
               f"pretrained={saved_tiny}", "--batch_size", "2", "--tasks", "tiny_yesno_gen,tiny_yesno_mc", "--include_path",
               str(tmp_path / "tasks"), "--output_path", str(tmp_path / "out"), "--log_samples"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    found = list((tmp_path / "out").rglob("*_results.json"))  # lmms-eval exits 0 even when evaluation fails
    assert done.returncode == 0 and len(found) == 1, done.stderr[-3000:]
    result_file = found[0]
    results = json.loads(result_file.read_text())["results"]

    pipeline = ConvLlavaPipeline(tiny_model, processor)
    prompt = "Is there a cat?\nAnswer the question using a single word or phrase."
    generated = [pipeline.generate([as_request(prompt, [im])], max_new_tokens=4)[0].split("\n")[0] for im in images]
    expected_gen = sum(g.strip().lower() == a for g, a in zip(generated, answers, strict=True)) / 4
    assert results["tiny_yesno_gen"]["exact,none"] == pytest.approx(expected_gen)
    picks = []
    for im in images:
        losses = [-t / n for t, n, _ in (pipeline.loglikelihood(as_request(prompt, [im]), c) for c in ("yes", "no"))]
        picks.append(["yes", "no"][losses.index(min(losses))])
    expected_mc = sum(p == a for p, a in zip(picks, answers, strict=True)) / 4
    assert results["tiny_yesno_mc"]["acc,none"] == pytest.approx(expected_mc)


def test_loglikelihood_requests_return_mean_negative_logprob(saved_tiny, tiny_model, processor):
    require("lmms_eval")
    from lmms_eval.api.instance import Instance

    from convllava.integrations.lmms_eval import ConvLlavaLmms

    lm = ConvLlavaLmms(pretrained=str(saved_tiny))
    image = random_image(40, 56, seed=9)
    lm.task_dict = {"t": {"test": [{"image": image}]}}
    args = ("Is there a cat?", " yes", lambda doc: [doc["image"]], 0, "t", "test")
    ((value, greedy),) = lm.loglikelihood(
        [Instance("loglikelihood", args, idx=0, metadata={"task": "t", "doc_id": 0, "repeats": 1})]
    )
    total, count, expected_greedy = ConvLlavaPipeline(tiny_model, processor).loglikelihood(
        as_request("Is there a cat?", [image]), " yes"
    )
    assert value == pytest.approx(-total / count, rel=1e-5) and value > 0 and greedy is expected_greedy


def test_vlmevalkit_inference_runs_our_class_on_a_tsv(tmp_path, saved_tiny, tiny_model, processor, monkeypatch):
    require("vlmeval")
    monkeypatch.setenv("LMUData", str(tmp_path / "LMUData"))
    (tmp_path / "LMUData").mkdir()
    rows = ["index\timage\tquestion\tA\tB\tanswer\tcategory"]
    for i in range(3):
        buffer = io.BytesIO()
        random_image(40, 56, seed=i).save(buffer, format="PNG")
        rows.append(f"{i}\t{base64.b64encode(buffer.getvalue()).decode()}\tWhich animal?\tcat\tdog\tA\tanimals")
    (tmp_path / "LMUData" / "TinyMCQ.tsv").write_text("\n".join(rows) + "\n")
    from vlmeval.config import supported_VLM
    from vlmeval.dataset import build_dataset
    from vlmeval.inference import infer_data_job

    from convllava.integrations.vlmevalkit import ConvLlavaVLMEval, register

    register("ConvLLaVA-tiny", model_path=str(saved_tiny), max_new_tokens=3)
    model = supported_VLM["ConvLLaVA-tiny"]()
    assert isinstance(model, ConvLlavaVLMEval)
    dataset = build_dataset("TinyMCQ")
    pipeline = ConvLlavaPipeline(tiny_model, processor)
    expected = []
    for i in range(3):
        prompt = dataset.build_prompt(dataset.data.iloc[i])
        text = "".join("<image>\n" if m["type"] == "image" else m["value"] for m in prompt).strip()
        images = [m["value"] for m in prompt if m["type"] == "image"]
        expected.append(pipeline.generate([as_request(text, images)], max_new_tokens=3)[0])
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(tmp_path)
    infer_data_job(model, str(work), "ConvLLaVA-tiny", dataset)
    (pred_file,) = [p for p in work.rglob("ConvLLaVA-tiny_TinyMCQ.*") if p.suffix in (".xlsx", ".tsv", ".csv", ".pkl")]
    from vlmeval.smp import load

    predictions = list(load(str(pred_file))["prediction"])
    assert [str(p) if str(p) != "nan" else "" for p in predictions] == expected
