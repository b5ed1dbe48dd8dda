"""The demo: the synthetic generator is deterministic and self-consistent, its files feed the ordinary training
and evaluation paths, the ablation presets give equal visual token counts, and (slow stage) `convllava demo
--quick` runs end to end and resumes instead of redoing finished steps."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from convllava.cli.main import main
from convllava.data import load_records
from convllava.demo.synthetic import CELL_NAMES, COLORS, caption, draw_scene, drills, generate, make_scene, questions
from convllava.evaluation.formats import read_benchmark
from convllava.evaluation.tasks import get_task


def test_generation_is_deterministic_and_complete(tmp_path):
    generate(tmp_path / "a", 6, 3, seed=5)
    generate(tmp_path / "b", 6, 3, seed=5)
    for name in ("captions.jsonl", "instruct.jsonl", "eval/pope.jsonl", "eval/refcoco.jsonl", "images/000004.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    generate(tmp_path / "c", 6, 3, seed=6)
    assert (tmp_path / "c" / "instruct.jsonl").read_bytes() != (tmp_path / "a" / "instruct.jsonl").read_bytes()
    records = load_records(str(tmp_path / "a" / "instruct.jsonl"))
    assert len(records) == 6 * 3  # three conversations per training image
    assert all(r["conversations"][0]["value"].startswith("<image>\n") for r in records)
    for kind in ("vqa", "pope", "refcoco", "text", "detail"):
        assert len(read_benchmark(tmp_path / "a" / "eval" / f"{kind}.jsonl")) == (6 if kind == "vqa" else 3)


def test_boxes_cover_their_shapes_and_answers_match_the_scene():
    rng = random.Random(3)
    for _ in range(20):
        scene = make_scene(rng)
        pixels = np.asarray(draw_scene(scene, 256)).astype(int)
        for thing in scene.things:
            x1, y1, x2, y2 = (round(v * 256) for v in thing.box)
            inside = pixels[y1:y2, x1:x2]
            share = (np.abs(inside - np.array(COLORS[thing.color])).sum(-1) < 30).mean()
            assert share > 0.4, thing  # the shape fills a good part of its box
        listed = questions(scene, rng)
        qs = {q["kind"]: q for q in listed}
        assert qs["text"]["answer"] == scene.word and qs["detail"]["answer"] == scene.dot_color
        attribute, count = [q for q in listed if q["kind"] == "vqa"]
        assert attribute["answer"] in {t.color for t in scene.things} | {t.shape for t in scene.things}
        assert count["answer"] == str(len(scene.things))
        present = {(t.color, t.shape) for t in scene.things}
        color, shape = qs["pope"]["question"].removeprefix("Is there a ").removesuffix(" in the image?").split()
        assert ((color, shape) in present) == (qs["pope"]["answer"] == "yes")
        # the caption names every object shape first, in order of shape name and then place, each with its place
        text = caption(scene)
        at = [text.index(f"a {t.shape} that is {t.color}, at the {CELL_NAMES[t.cell]}") for t in scene.things]
        order = [t for _, t in sorted(zip(at, scene.things, strict=True))]
        assert order == sorted(scene.things, key=lambda t: (t.shape, t.cell))
        # ... after the absent colours, which therefore cannot be read off the objects already written
        absent = sorted(set(COLORS) - {t.color for t in scene.things})
        assert text.startswith(f"There is no {', '.join(absent[:-1])} or {absent[-1]} shape. The picture shows ")


def test_training_drills_ask_about_every_object_and_no_answer_is_in_an_earlier_turn():
    rng = random.Random(4)
    for _ in range(20):
        scene = make_scene(rng)
        attributes, rest, presence = drills(scene, rng)
        refs = [q for q in rest if q["kind"] == "refcoco"]
        assert sorted(tuple(q["box"]) for q in refs) == sorted(t.box for t in scene.things)
        assert len(attributes) == len(scene.things) and {q["kind"] for q in attributes} == {"vqa"}
        for q in attributes:  # "What color is the circle?" names a unique shape; "What shape is red?" a colour
            named = q["question"].removesuffix("?").split()[-1]
            (match,) = [t for t in scene.things if named in (t.shape, t.color)]
            assert q["answer"] in (match.color, match.shape) and q["answer"] != named
        assert sorted(q["kind"] for q in rest) == sorted(["vqa", "text", "detail"] + ["refcoco"] * len(scene.things))
        # POPE in its own conversation (no expression naming an object before it), each colour at most once, as
        # many "yes" as "no" in every scene: the object count must not tell the likelier answer
        present = {(t.color, t.shape) for t in scene.things}
        asked = [q["question"].removeprefix("Is there a ").removesuffix(" in the image?").split() for q in presence]
        assert {q["kind"] for q in presence} == {"pope"} and len({c for c, _ in asked}) == len(asked)
        k = min(len(scene.things), len(COLORS) - len(scene.things))
        assert sorted(q["answer"] for q in presence) == ["no"] * k + ["yes"] * k
        for (color, shape), q in zip(asked, presence, strict=True):
            assert ((color, shape) in present) == (q["answer"] == "yes")
            assert shape in {t.shape for t in scene.things}  # a "no" names a present shape: the adversarial near miss


def test_eval_rows_build_the_runner_targets(tmp_path):
    generate(tmp_path, 2, 4, seed=1)
    row = read_benchmark(tmp_path / "eval" / "refcoco.jsonl")[0]
    task = get_task("refcoco")
    images = task.images(row, tmp_path / "images")
    target = task.target({**row, **task.prepare(row, images, {})})
    assert target["bbox"] == row["box"] and target["width"] == 256


def test_vqa_scores_split_by_question_category_with_the_benchmark_scorer(tmp_path):
    from convllava.demo.checks import scores_by_category
    from convllava.evaluation.runner import score_predictions

    generate(tmp_path, 0, 12, seed=2)
    rows = read_benchmark(tmp_path / "eval" / "vqa.jsonl")
    expected = {"How many": "count", "What color": "color of a shape", "What shape": "shape of a color"}
    assert all(r["category"] == next(c for q, c in expected.items() if r["question"].startswith(q)) for r in rows)
    predictions = [  # counts answered right, attributes wrong
        {"id": r["question_id"], "prediction": r["answer"] if r["category"] == "count" else "no idea",
         "target": {"answers": r["answers"]}}
        for r in rows
    ]  # fmt: skip
    (tmp_path / "out" / "vqa").mkdir(parents=True)
    (tmp_path / "out" / "vqa" / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    parts = scores_by_category(tmp_path, tmp_path / "out", "vqa")
    assert parts["count"] == {"n": 12, "accuracy": 1.0}
    assert {c: v["accuracy"] for c, v in parts.items() if c != "count"} == dict.fromkeys(set(parts) - {"count"}, 0.0)
    assert sum(v["n"] for v in parts.values()) == len(rows) == 24
    overall = score_predictions("textvqa", predictions)["accuracy"]
    assert overall == pytest.approx(sum(v["n"] * v["accuracy"] for v in parts.values()) / len(rows))


def test_grounding_scores_split_by_the_objects_in_the_scene(tmp_path):
    from convllava.demo.checks import scores_by_category

    generate(tmp_path, 0, 40, seed=3)
    rows = read_benchmark(tmp_path / "eval" / "refcoco.jsonl")
    scenes = {}  # image -> its object count, from the vqa split's count question
    for r in read_benchmark(tmp_path / "eval" / "vqa.jsonl"):
        if r["category"] == "count":
            scenes[r["image"]] = int(r["answer"])
    assert all(r["category"] == f"{scenes[r['image']]} object" + "s" * (scenes[r["image"]] > 1) for r in rows)
    right = [r["category"] == "1 object" for r in rows]  # boxes right in one-object scenes only
    (tmp_path / "out" / "refcoco").mkdir(parents=True)
    lines = "".join(json.dumps(p) + "\n" for p in _predictions(rows, "refcoco", right))
    (tmp_path / "out" / "refcoco" / "predictions.jsonl").write_text(lines)
    parts = scores_by_category(tmp_path, tmp_path / "out", "refcoco")
    assert set(parts) == {"1 object", "2 objects", "3 objects"} and sum(v["n"] for v in parts.values()) == 40
    assert parts["1 object"]["acc@0.5"] == 1.0 and parts["2 objects"]["acc@0.5"] == parts["3 objects"]["acc@0.5"] == 0


def test_binding_split_asks_a_colour_only_where_no_shape_repeats(tmp_path):
    generate(tmp_path, 0, 60, seed=5)
    rows = {r["image"]: r for r in read_benchmark(tmp_path / "eval" / "binding.jsonl")}
    rng = random.Random(5)  # the generator's scene stream: each scene, then its held-out questions
    asked = 0
    for i in range(60):
        scene = make_scene(rng)
        questions(scene, rng)
        shapes = [t.shape for t in scene.things]
        row = rows.get(f"{i:06d}.png")
        if len(shapes) < 2 or len(set(shapes)) < len(shapes):  # a repeated shape could be answered without binding
            assert row is None
            continue
        (named,) = [t for t in scene.things if f"What shape is {t.color}?" == row["question"]]
        assert row["answer"] == named.shape and row["answers"] == [named.shape] * 10
        assert row["category"] == f"{len(shapes)} objects"
        asked += 1
    assert asked == len(rows) > 10


def _predictions(rows: list[dict], name: str, right: list[bool]) -> list[dict]:
    """Saved-prediction rows as the evaluation runner writes them, right or wrong as asked."""
    from convllava.demo.synthetic import box_text

    out = []
    for r, ok in zip(rows, right, strict=True):
        if name == "refcoco":  # a wrong box is moved by 0.2 in x and y: IoU well under 0.5
            target = {"bbox": r["box"], "width": 256, "height": 256, "frame": "original"}
            prediction = box_text(r["box"] if ok else [min(v + 0.2, 1.0) for v in r["box"]])
        elif name == "pope":
            target = {"answer": r["answer"], "category": r["category"]}
            prediction = r["answer"] if ok else {"yes": "no", "no": "yes"}[r["answer"]]
        else:
            target, prediction = {"answers": r["answers"]}, r["answer"] if ok else "no idea"
        out.append({"id": r["question_id"], "prediction": prediction, "target": target})
    return out


def test_every_question_about_one_image_is_graded_by_its_benchmarks_scorer(tmp_path):
    from convllava.demo.checks import answers_for_image
    from convllava.demo.synthetic import EVAL_TASKS

    generate(tmp_path, 0, 6, seed=4)
    expected_right = {}
    for name in EVAL_TASKS:
        rows = read_benchmark(tmp_path / "eval" / f"{name}.jsonl")
        # POPE all right: a right "no" must count as right although a one-row F1 of it is 0
        right = [True] * len(rows) if name == "pope" else [i % 2 == 0 for i in range(len(rows))]
        (tmp_path / "out" / name).mkdir(parents=True)
        lines = "".join(json.dumps(p) + "\n" for p in _predictions(rows, name, right))
        (tmp_path / "out" / name / "predictions.jsonl").write_text(lines)
        expected_right[name] = sum(right)
    images = sorted({r["image"] for r in read_benchmark(tmp_path / "eval" / "text.jsonl")})
    turns = {image: answers_for_image(tmp_path, tmp_path / "out", image) for image in images}
    assert [t["set"] for t in turns[images[0]]] == ["vqa", "vqa", "pope", "refcoco", "text", "detail"]
    assert turns[images[0]][3]["question"].startswith("the ") and turns[images[0]][3]["expected"].startswith("[")
    for name, count in expected_right.items():
        graded = [t for ts in turns.values() for t in ts if t["set"] == name]
        assert sum(t["right"] for t in graded) == count, name
    assert any(t["expected"] == "no" and t["right"] for ts in turns.values() for t in ts if t["set"] == "pope")


def test_report_shows_the_vqa_split_and_the_ablation_against_chance(tmp_path):
    from convllava.demo.runner import _report

    dependence = {"own_image_nll": 0.8, "other_image_nll": 3.5, "answers": 60}
    results = {
        "command": "convllava demo --ablation resolution", "seconds": 700.0, "timings": {"data": 7.0},
        "headline": {"vqa accuracy": 0.8}, "sample": {"image": "x.png", "question": "Q?", "answer": "a", "expected": "b"},
        "scores": {"image_dependence": dependence, "vqa_by_category": {"count": {"n": 150, "accuracy": 0.98},
                                                                       "shape of a color": {"n": 44, "accuracy": 0.5}},
                   "refcoco_by_category": {"1 object": {"n": 126, "acc@0.5": 1.0},
                                           "2 objects": {"n": 134, "acc@0.5": 0.425}},
                   "binding_by_category": {"2 objects": {"n": 86, "accuracy": 0.605},
                                           "3 objects": {"n": 35, "accuracy": 0.543}}},
        "ablation": {"rows": [{"model": "5-stage", "image_size": 256, "tokens": 16, "text": 0.09, "detail": 0.22,
                               **dependence}]},
    }  # fmt: skip
    lines = _report(tmp_path, results).splitlines()
    assert "count 0.980 (150), shape of a color 0.500 (44)." in next(line for line in lines if "VQA accuracy" in line)
    grounding = next(line for line in lines if "Grounding Acc@0.5" in line)
    assert "1 object 1.000 (126), 2 objects 0.425 (134)." in grounding
    binding = next(line for line in lines if "by its colour" in line)
    assert "2 objects 0.605 (86; chance 0.50), 3 objects 0.543 (35; chance 0.33)." in binding
    chance = next(line for line in lines if line.startswith("| chance"))
    assert "8 words / 5 colours" in chance and "| 0.125 | 0.200 |" in chance


def test_ablation_models_give_the_same_visual_tokens(tokenizer, tmp_path):
    from convllava.demo.runner import FULL, IMAGE_SIZE, _stage_configs
    from convllava.training.runner import load_model_and_processor

    tokenizer.save_pretrained(tmp_path / "tok")
    for preset, side in (("convllava-tiny", IMAGE_SIZE), ("convllava-tiny-4stage", IMAGE_SIZE // 2)):
        stage1 = _stage_configs(tmp_path, tmp_path / "data", tmp_path / "tok", FULL, preset, side)[0]
        model, processor = load_model_and_processor(stage1)
        assert model.config.image_size == side
        assert processor.num_image_tokens(side, side) == 9  # one token for each cell of the scenes' 3 x 3 grid


@pytest.mark.slow
def test_demo_quick_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--output", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(summary["headline"]) == {
        "vqa accuracy",
        "pope f1",
        "refcoco acc@0.5",
        "text accuracy",
        "detail accuracy",
    }
    results = json.loads((out / "results.json").read_text())
    for name in ("report.md", "plot.png", "stage3/model.safetensors", "eval/pope/results.json"):
        assert (out / name).exists(), name
    report = (out / "report.md").read_text()
    assert results["sample"]["image"].endswith(".png") and "A:" in report and "VQA accuracy by kind" in report
    assert sum(v["n"] for v in results["scores"]["vqa_by_category"].values()) == 2 * 30  # two questions per scene
    assert sum(v["n"] for v in results["scores"]["refcoco_by_category"].values()) == 30 and "Grounding Acc" in report
    assert results["scores"]["binding_by_category"] and "Finding an object by its colour" in report
    evaluated = results["sample"]["evaluated"]  # the sample image's six held-out questions, graded
    assert [t["set"] for t in evaluated] == ["vqa", "vqa", "pope", "refcoco", "text", "detail"]
    assert "| set | question | answer | expected | right |" in report
    stamp = (out / "stage3" / "model.safetensors").stat().st_mtime
    assert main(["demo", "--quick", "--output", str(out)]) == 0  # resumes: nothing is trained again
    assert (out / "stage3" / "model.safetensors").stat().st_mtime == stamp
    assert json.loads((out / "results.json").read_text())["headline"] == results["headline"]


def test_image_dependence_separates_a_model_that_reads_images_from_one_that_cannot(tmp_path, saved_tiny):
    import torch

    from convllava import load
    from convllava.demo.checks import image_dependence

    generate(tmp_path / "data", 0, 4, seed=1)
    pipeline = load(str(saved_tiny))
    reads = image_dependence(pipeline, tmp_path / "data", per_kind=3)
    assert reads["answers"] == 9 and reads["own_image_nll"] > 0
    assert reads["own_image_nll"] != reads["other_image_nll"]  # a random tower still moves the logits
    with torch.no_grad():  # a projector that outputs zeros: every image looks the same to the LM
        pipeline.model.model.projector[-1].weight.zero_()
        pipeline.model.model.projector[-1].bias.zero_()
    blind = image_dependence(pipeline, tmp_path / "data", per_kind=3)
    assert blind["own_image_nll"] == pytest.approx(blind["other_image_nll"], abs=1e-6)
