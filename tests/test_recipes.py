"""Data recipes without internet: a loopback HTTP server (with Range support and a connection that dies
mid-download) and a local folder standing in for the hub serve tiny copies of the sources in their real layouts
(numeric LCS folders, `train2017/` COCO zip, WebData's `data/` prefix, ALLaVA's junk-path chunks and VFLAN
symlink, OCR-VQA GIFs under .jpg names). Also the shipped ConvLLaVA recipe's totals and `convllava train`
reading a recipe stage."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from convllava.cli.main import main
from convllava.data.recipes import load_recipe
from convllava.data.recipes.check import check
from convllava.data.recipes.fetch import ChecksumError
from convllava.data.recipes.mix import sample, stage_records
from convllava.data.recipes.prepare import plan, prepare
from convllava.data.recipes.schema import RecipeError

REPO = Path(__file__).resolve().parents[1]


def _img(fmt: str = "JPEG", seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 40 % 255, 80, 120)).save(buffer, format=fmt)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as handle:
        for name, data in members.items():
            handle.writestr(name, data)
    return buffer.getvalue()


def _conv(image: str | None) -> dict:
    human = ("<image>\n" if image else "") + "Describe."
    record = {"conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": "A thing."}]}
    return {"image": image, **record} if image else record


class Files:
    """Loopback HTTP file server; `cut_once` names files whose first download dies halfway."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.cut_once, self.requests = files, set(), []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                owner.requests.append((name, self.headers.get("Range")))
                if name not in owner.files:
                    self.send_response(404)
                    self.end_headers()
                    return
                data, start = owner.files[name], 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if name in owner.cut_once:
                    owner.cut_once.discard(name)
                    self.wfile.write(data[start : start + (len(data) - start) // 2])
                    self.wfile.flush()
                    self.connection.close()  # the connection dies mid-download
                    return
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def world(tmp_path):
    """Hub folder + HTTP server + a recipe over them, in the real file layouts."""
    hub = tmp_path / "hub"
    coco_zip = _zip(
        {
            "train2017/000000000001.jpg": _img(seed=1),
            "train2017/000000000002.jpg": _img(seed=2),
            "train2017/padding.bin": bytes(range(256)) * 8192,
        }
    )  # 2 MiB, so a cut leaves a partial file
    web_zip = _zip({"data/wikiart/images/a.jpg": _img(seed=3)})
    gif = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(gif, format="GIF")
    ocr_zip = _zip({"images/111.jpg": gif.getvalue(), "images/222.jpg": _img(seed=4)})
    server = Files({"coco/train2017.zip": coco_zip, "web/wikiart.zip": web_zip, "ocr/ocr.zip": ocr_zip})
    pt = [_conv("coco/train2017/000000000001.jpg"), _conv("llava/llava_pretrain/images/00000/000000001.jpg"),
          _conv("wikiart/images/a.jpg"), _conv("coco/train2017/missing.jpg"), _conv("coco/train2017/corrupt.jpg"),
          _conv("ocr_vqa/images/111.jpg"), _conv(None)]  # fmt: skip
    allava = [_conv("allava_laion/images/100.jpeg"), _conv("allava_vflan/images/images_191task_1k/t+1.png")]
    (hub / "org/sg4v").mkdir(parents=True)
    (hub / "org/sg4v/pt.json").write_text(json.dumps(pt))
    (hub / "org/lcs").mkdir(parents=True)
    (hub / "org/lcs/images.zip").write_bytes(_zip({"00000/000000001.jpg": _img(seed=5)}))
    (hub / "org/allava/allava_laion/image_chunks").mkdir(parents=True)
    (hub / "org/allava/allava_laion/image_chunks/images_0.zip").write_bytes(_zip({"some/deep/100.jpeg": _img(seed=6)}))
    (hub / "org/allava/allava_laion/cap.json").write_text(json.dumps(allava))
    (hub / "org/vflan").mkdir(parents=True)
    (hub / "org/vflan/image.zip").write_bytes(_zip({"images_191task_1k/t+1.png": _img("PNG", seed=7)}))
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"""
recipe: tiny
sources:
  - {{id: sg4v, kind: hf, repo_id: org/sg4v, revision: abc123, files: [{{path: pt.json, dest: sharegpt4v}}]}}
  - {{id: lcs, kind: hf, repo_id: org/lcs, revision: abc123,
     files: [{{path: images.zip, extract: {{type: zip, into: llava/llava_pretrain/images}}}}]}}
  - {{id: coco, kind: url, files: [{{name: train2017.zip, urls: ["{server.url}/nope.zip", "{server.url}/coco/train2017.zip"],
     sha256: {sha(coco_zip)}, bytes: {len(coco_zip)}, extract: {{type: zip, into: coco}}}}]}}
  - {{id: web, kind: url, files: [{{name: wikiart.zip, urls: ["{server.url}/web/wikiart.zip"], sha256: {sha(web_zip)},
     extract: {{type: zip, strip_prefix: data/}}}}]}}
  - {{id: ocr, kind: url, files: [{{name: ocr.zip, urls: ["{server.url}/ocr/ocr.zip"], extract: {{type: zip, into: ocr_vqa}}}}],
     post: [{{fix: ocr_vqa_to_jpg, dir: ocr_vqa/images}}]}}
  - {{id: allava, kind: hf, repo_id: org/allava, revision: abc123,
     files: [{{path: allava_laion/cap.json, dest: allava/allava_laion}},
             {{path: allava_laion/image_chunks/images_0.zip, extract: {{type: zip, junk_paths: true, into: allava/allava_laion/images}}}}],
     post: [{{symlink: allava/allava_vflan/images, target: ../../vflan}}]}}
  - {{id: vflan, kind: hf, repo_id: org/vflan, revision: abc123, files: [{{path: image.zip, extract: {{type: zip, into: vflan}}}}]}}
datasets:
  - {{id: pt, annotation: sharegpt4v/pt.json, requires: [sg4v, lcs, coco, web, ocr], expect: {{records: 7}}, on_missing_image: drop}}
  - {{id: allava_cap, annotation: allava/allava_laion/cap.json, image_root: allava, requires: [allava, vflan], expect: {{records: 2}}}}
stages:
  stage1: {{datasets: [pt], expect_total: 7}}
  stage2: {{inherit: stage1, add: [allava_cap], expect_total: 9}}
""")
    yield {"recipe": recipe, "hub": hub, "server": server, "coco_zip": coco_zip}
    server.server.shutdown()


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".convllava" not in p.parts}  # fmt: skip


def test_prepare_interrupted_then_resumed_equals_uninterrupted(world, tmp_path):
    recipe = load_recipe(world["recipe"])
    prepare(recipe, tmp_path / "clean", hub_root=world["hub"], echo=lambda *_: None)
    world["server"].cut_once.add("coco/train2017.zip")
    with pytest.raises(Exception):  # noqa: B017 -- whatever the transport raises when the connection dies
        prepare(recipe, tmp_path / "cut", hub_root=world["hub"], echo=lambda *_: None)
    part = tmp_path / "cut/.convllava/downloads/coco/train2017.zip.part"
    partial = part.stat().st_size
    assert 0 < partial < len(world["coco_zip"]) and not (tmp_path / "cut/coco").exists()
    world["server"].requests.clear()
    prepare(recipe, tmp_path / "cut", hub_root=world["hub"], echo=lambda *_: None)
    ranges = [r for name, r in world["server"].requests if name == "coco/train2017.zip"]
    assert ranges == [f"bytes={partial}-"]  # resumed where it stopped, not downloaded again
    assert _tree(tmp_path / "cut") == _tree(tmp_path / "clean")
    root = tmp_path / "clean"
    assert (root / "coco/train2017/000000000001.jpg").is_file() and (root / "wikiart/images/a.jpg").is_file()
    assert (root / "allava/allava_laion/images/100.jpeg").is_file()  # junk_paths
    assert (root / "allava/allava_vflan/images/images_191task_1k/t+1.png").is_file()  # through the symlink
    assert (root / "ocr_vqa/images/111.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # the GIF is a JPEG now
    world["server"].requests.clear()
    prepare(recipe, root, hub_root=world["hub"], echo=lambda *_: None)
    assert world["server"].requests == []  # finished files are not fetched again


def test_wrong_checksum_is_refused_and_nothing_lands(world, tmp_path):
    text = world["recipe"].read_text().replace(hashlib.sha256(world["coco_zip"]).hexdigest(), "f" * 64)
    world["recipe"].write_text(text)
    with pytest.raises(ChecksumError, match=r"train2017\.zip of source coco: .*sha256 .* does not match"):
        prepare(load_recipe(world["recipe"]), tmp_path / "r", hub_root=world["hub"], echo=lambda *_: None)
    assert not (tmp_path / "r/coco").exists() and not list((tmp_path / "r/.convllava/downloads/coco").iterdir())


def test_check_counts_each_broken_kind_and_writes_filtered(world, tmp_path):
    root = tmp_path / "root"
    recipe = load_recipe(world["recipe"])
    prepare(recipe, root, hub_root=world["hub"], echo=lambda *_: None)
    (root / "coco/train2017/corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    records = json.loads((root / "sharegpt4v/pt.json").read_text())
    records.append({"image": "x.jpg", "conversations": [{"from": "gpt", "value": "<image>"}]})  # bad schema
    (root / "sharegpt4v/pt.json").write_text(json.dumps(records))
    result = check(recipe, root, "stage2", decode=True, workers=2, write_filtered=True)
    pt = result["datasets"]["pt"]
    assert pt["broken"] == {"bad_schema": 1, "missing_image": 1, "undecodable_image": 1}
    assert pt["records"] == 8 and pt["count_ok"] is False and pt["filtered"]["dropped"] == 3
    assert result["datasets"]["allava_cap"]["broken"] == {"missing_image": 0, "undecodable_image": 0}
    assert not result["ok"]  # the count differs from the recipe
    assert len(json.loads((root / "sharegpt4v/pt.json.filtered.json").read_text())) == 5
    records = stage_records(f"{world['recipe']}:stage2", root)
    assert len(records) == 7 and records[-2]["image"] == "allava/allava_laion/images/100.jpeg"
    lock = json.loads((root / ".convllava/stage2.lock.json").read_text())
    assert lock["mix_sha256"] == result["lock"]["mix_sha256"] and "coco/train2017.zip" not in lock["files"]


def test_sampling_strategies():
    data = list(range(10))
    assert sample(data, "first:3") == [0, 1, 2] and sample(data, "end:25%") == [7, 8, 9]
    assert sample(data, "random:4", seed=1) == sample(data, "random:4", seed=1) != sample(data, "random:4", seed=2)
    with pytest.raises(ValueError, match="first:N"):
        sample(data, "some")


def test_shipped_convllava_recipe_totals_and_plan_cli(capsys):
    recipe = load_recipe(REPO / "recipes/convllava.yaml")
    stages = plan(recipe)["stages"]
    assert [stages[s]["records"] for s in ("stage1", "stage2", "stage3")] == [2_057_066, 2_951_822, 665_298]
    assert all(stages[s]["records"] == stages[s]["expect_total"] for s in stages)
    assert plan(recipe, "current")["stages"]["stage2"]["records"] == 2_861_600
    assert main(["data", "plan", str(REPO / "recipes/convllava.yaml")]) == 0
    out = capsys.readouterr().out
    assert "stage1: 2,057,066 records" in out and "GiB" in out
    assert plan(load_recipe(REPO / "recipes/llava15.yaml"))["stages"]["pretrain"]["records"] == 558_128


def test_recipe_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{id: s, kind: hf, repo_id: a/b, files: [{path: x}]}]\n")
    with pytest.raises(RecipeError, match="needs a pinned 'revision'"):
        load_recipe(bad)
    bad.write_text("sources: [{id: s, kind: url, files: [{name: x, urls: [u], sha256: 0000}]}]\n")
    with pytest.raises(RecipeError, match="sha256 was read as a number; quote it"):
        load_recipe(bad)
    bad.write_text("datasets: [{id: d, annotation: a.json, requires: [nope]}]\n")
    with pytest.raises(RecipeError, match="requires unknown source 'nope'"):
        load_recipe(bad)
    bad.write_text("stages: {s1: {datasets: [ghost]}}\n")
    with pytest.raises(RecipeError, match="unknown dataset 'ghost'"):
        load_recipe(bad)


def test_train_reads_a_recipe_stage(world, tmp_path, tokenizer):
    from convllava.training.config import TrainConfig
    from convllava.training.runner import _records

    root = tmp_path / "root"
    prepare(load_recipe(world["recipe"]), root, hub_root=world["hub"], echo=lambda *_: None)
    config = TrainConfig(model="convllava-tiny", data=f"{world['recipe']}:stage2", image_folder=str(root))
    assert len(_records(config)) == 9
    with pytest.raises(ValueError, match="needs --image-folder"):
        _records(TrainConfig(model="convllava-tiny", data=f"{world['recipe']}:stage2"))
