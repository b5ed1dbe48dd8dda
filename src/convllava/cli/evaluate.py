"""evaluate.py

`convllava eval --model M --task T --data PATH [--protocol P] [--limit N] [--batch-size B] [--output DIR]`
runs one benchmark (resumable); `convllava eval report DIR...` compares finished runs side by side;
`convllava eval score DIR --protocol P` re-scores saved predictions under another protocol, without the model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..evaluation.tasks import TASKS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate on a benchmark; `eval report DIR...` compares runs; `eval score DIR` re-scores",
        description="Evaluate a model on a local benchmark copy (lmms-eval parquet / dataset folder, VLMEvalKit "
        "TSV, LLaVA JSONL). Predictions are appended as they come; re-running the same command resumes.",
    )
    p.add_argument("action", nargs="*", metavar="report|score DIR", help="`report DIR...` or `score DIR`")
    p.add_argument("--model", help="model folder, Hub id, or original checkpoint")
    p.add_argument("--task", choices=sorted(TASKS), help="benchmark")
    p.add_argument("--data", help="benchmark file or folder")
    p.add_argument("--split", help="split of a dataset folder with several")
    p.add_argument("--image-folder", help="root for relative image paths (LLaVA JSONL)")
    p.add_argument("--protocol", default="lmms-eval", choices=["lmms-eval", "vlmevalkit", "llava"])
    p.add_argument("--limit", type=int, help="first N rows only")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, help="default: the benchmark's own")
    p.add_argument("--box-frame", default="original", choices=["original", "padded"],
                   help="frame of the model's boxes (padded: a pad-mode model answering on the square canvas)")  # fmt: skip
    p.add_argument("--output", help="run folder (default runs/eval/<task>)")
    p.add_argument("--judge-model", help="judge for MM-Vet / LLaVA-Bench (e.g. gpt-4-0613)")
    p.add_argument("--judge-base-url", help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL or OpenAI)")
    p.add_argument("--dtype", default=None)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--template",
        default=None,
        help="conversation template (default: the checkpoint's own; mistral_instruct, chatml_direct, ...)",
    )
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from ..evaluation import runner

    if args.action:
        verb, dirs = args.action[0], args.action[1:]
        if verb == "report" and dirs:
            print(runner.report(dirs), end="")
            return 0
        if verb == "score" and len(dirs) == 1:
            return _rescore(Path(dirs[0]), args.protocol)
        raise ValueError(
            "use `convllava eval report DIR...`, `convllava eval score DIR` or `convllava eval --model ...`"
        )
    missing = [f"--{k}" for k in ("model", "task", "data") if getattr(args, k) is None]
    if missing:
        raise ValueError(f"convllava eval needs {', '.join(missing)}")
    from .. import load
    from ..evaluation.judge import OpenAIJudge

    judge = OpenAIJudge(args.judge_model, base_url=args.judge_base_url) if args.judge_model else None
    pipeline = load(args.model, dtype=args.dtype, device=args.device, template=args.template)
    output = args.output or f"runs/eval/{args.task}"
    results = runner.evaluate(
        pipeline, args.task, args.data, output, protocol=args.protocol, limit=args.limit, batch_size=args.batch_size,
        image_folder=args.image_folder, split=args.split, max_new_tokens=args.max_new_tokens, judge=judge,
        box_frame=args.box_frame, model_name=args.model,
    )  # fmt: skip
    print(json.dumps({"task": results["task"], **results["headline"], "samples": results["samples"],
                      "errors": results["errors"], "output": str(output)}))  # fmt: skip
    return 0


def _rescore(folder: Path, protocol: str) -> int:
    from ..evaluation import runner

    results_path = folder / "results.json"
    if not results_path.is_file():
        raise FileNotFoundError(f"{results_path} not found; finish the run first")
    previous = json.loads(results_path.read_text(encoding="utf-8"))
    rows = runner.saved_rows(folder)
    metrics = runner.score_predictions(previous["task"], rows, protocol)
    print(json.dumps({"task": previous["task"], "protocol": protocol, "metrics": metrics}, indent=2))
    return 0
