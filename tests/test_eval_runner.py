"""The evaluation runner end to end on the tiny model: a generated POPE-style set in lmms-eval's parquet layout,
interrupted and resumed (also after a torn last line) gives the same results file as an uninterrupted run;
the VLMEvalKit TSV and LLaVA JSONL readers; re-scoring and the side-by-side report through the CLI."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from convllava.cli.main import main
from convllava.evaluation import runner
from convllava.evaluation.formats import read_benchmark
from convllava.evaluation.metrics import pope_metrics
from convllava.inference import ConvLlavaPipeline
from helpers import random_image


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    random_image(48, 64, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def pope_parquet(tmp_path):
    rows = [{"question_id": f"q{i}", "question": f"Is there a {'dog' if i % 2 else 'cat'} in the image?",
             "answer": "yes" if i % 3 else "no", "category": ["adversarial", "random"][i % 2],
             "image": {"bytes": _png(i), "path": f"{i}.png"}} for i in range(10)]  # fmt: skip
    folder = tmp_path / "POPE" / "data"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "test-00000-of-00001.parquet")
    return tmp_path / "POPE"


@pytest.fixture
def pipeline(tiny_model, processor):
    return ConvLlavaPipeline(tiny_model, processor)


class Interrupt(Exception):
    pass


def test_pope_interrupted_and_resumed_gives_the_same_results(pipeline, pope_parquet, tmp_path, monkeypatch):
    kwargs = {"batch_size": 3, "max_new_tokens": 3, "model_name": "tiny"}
    full = runner.evaluate(pipeline, "pope", pope_parquet, tmp_path / "full", **kwargs)
    assert full["samples"] == 10 and full["errors"] == 0
    preds = [json.loads(x) for x in (tmp_path / "full" / "predictions.jsonl").read_text().splitlines()]
    expected = pope_metrics([p["prediction"] for p in preds], [p["target"]["answer"] for p in preds])
    assert full["metrics"]["f1"] == expected["f1"] and set(full["metrics"]["categories"]) == {"adversarial", "random"}

    calls = {"n": 0}
    generate = ConvLlavaPipeline.generate

    def dying(self, requests, **gen):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt
        return generate(self, requests, **gen)

    monkeypatch.setattr(ConvLlavaPipeline, "generate", dying)
    with pytest.raises(Interrupt):
        runner.evaluate(pipeline, "pope", pope_parquet, tmp_path / "resumed", **kwargs)
    monkeypatch.setattr(ConvLlavaPipeline, "generate", generate)
    partial = tmp_path / "resumed" / "predictions.jsonl"
    assert len(partial.read_text().splitlines()) == 6 and not (tmp_path / "resumed" / "results.json").exists()
    with partial.open("a") as handle:
        handle.write('{"id": "q6", "predic')  # a kill in the middle of a write
    answered = []
    monkeypatch.setattr(ConvLlavaPipeline, "generate", lambda s, r, **g: answered.append(len(r)) or generate(s, r, **g))
    runner.evaluate(pipeline, "pope", pope_parquet, tmp_path / "resumed", **kwargs)
    assert sum(answered) == 4  # only the unanswered rows were generated again
    for name in ("results.json", "predictions.jsonl"):
        assert (tmp_path / "resumed" / name).read_text() == (tmp_path / "full" / name).read_text()


def test_vlmevalkit_tsv_with_shared_images_and_llava_jsonl(tmp_path, pipeline):
    shared = base64.b64encode(_png(1)).decode()
    lines = ["index\timage\tquestion\tA\tB\tanswer\tcategory",
             f"0\t{shared}\tWhich animal?\tcat\tdog\tA\tanimals", "1000000\t0\tWhich animal?\tdog\tcat\tB\tanimals"]  # fmt: skip
    tsv = tmp_path / "MMBench_DEV_EN.tsv"
    tsv.write_text("\n".join(lines) + "\n")
    rows = read_benchmark(tsv)
    assert rows[1]["image"] == rows[0]["image"] == _png(1)  # the second row names the first row's image
    result = runner.evaluate(pipeline, "mmbench", tsv, tmp_path / "mmb", max_new_tokens=2)
    assert result["metrics"]["questions"] == 1 and result["samples"] == 2

    (tmp_path / "imgs").mkdir()
    random_image(32, 32, seed=4).save(tmp_path / "imgs" / "a.png")
    jsonl = tmp_path / "pope.jsonl"
    jsonl.write_text(json.dumps({"question_id": 1, "image": "a.png", "text": "Is there a cat?", "label": "yes"}) + "\n"
                     + json.dumps({"question_id": 2, "image": "missing.png", "text": "Is there a dog?", "label": "no"}) + "\n")  # fmt: skip
    result = runner.evaluate(
        pipeline, "pope", jsonl, tmp_path / "llava", image_folder=tmp_path / "imgs", max_new_tokens=2
    )
    assert result["samples"] == 2 and result["errors"] == 1  # the missing image is reported, not dropped silently
    error_row = json.loads((tmp_path / "llava" / "predictions.jsonl").read_text().splitlines()[1])
    assert "missing.png" in error_row["error"]


def test_bad_inputs_get_clear_errors(tmp_path, pipeline, pope_parquet):
    with pytest.raises(ValueError, match="unknown task 'popee'; choose one of"):
        runner.evaluate(pipeline, "popee", pope_parquet, tmp_path / "x")
    with pytest.raises(ValueError, match="judge model"):
        runner.evaluate(pipeline, "mmvet", pope_parquet, tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        runner.evaluate(pipeline, "pope", tmp_path / "nope", tmp_path / "x")
    (tmp_path / "a.csv").write_text("x")
    with pytest.raises(ValueError, match="unknown benchmark format"):
        read_benchmark(tmp_path / "a.csv")
    (tmp_path / "b.jsonl").write_text('{"question_id": 1}\n{"question_id": 2,\n')
    with pytest.raises(ValueError, match=r"b\.jsonl:2 is not valid JSON"):
        read_benchmark(tmp_path / "b.jsonl")


def test_cli_eval_score_and_report(tmp_path, pope_parquet, saved_tiny, capsys):
    args = ["eval", "--model", str(saved_tiny), "--task", "pope", "--data", str(pope_parquet), "--limit", "4",
            "--max-new-tokens", "2"]  # fmt: skip
    assert main([*args, "--output", str(tmp_path / "a")]) == 0
    assert main([*args, "--output", str(tmp_path / "b"), "--protocol", "llava"]) == 0
    capsys.readouterr()
    assert main(["eval", "score", str(tmp_path / "a"), "--protocol", "vlmevalkit"]) == 0
    assert json.loads(capsys.readouterr().out)["protocol"] == "vlmevalkit"
    assert main(["eval", "report", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| task | metric | a | b |" and table[2].startswith("| pope | f1 | ")
    assert main(["eval", "--task", "pope"]) == 2
    assert "needs --model, --data" in capsys.readouterr().err
