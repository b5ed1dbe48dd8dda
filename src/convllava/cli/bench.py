"""bench.py

`convllava bench encoder|prefill|generate|train [--model PRESET ...] [--image-size ...] [--device cpu|cuda]
[--dtype ...] [--output results.json] [--plot cost.png]`: measurements with peers in the same process;
results as JSON (written atomically) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="benchmark encoder / prefill / generate / train against peers")
    p.add_argument("kind", choices=["encoder", "prefill", "generate", "train"])
    p.add_argument("--model", default="convllava-768", help="preset (encoder: its vision tower; others: the model)")
    p.add_argument("--image-size", type=int, nargs="*", help="encoder: ConvNeXt resolutions (default 768 1024 1536)")
    p.add_argument("--clip-size", type=int, nargs="*", help="encoder: CLIP resolutions (default 336 672 1008 1536)")
    p.add_argument("--batch-size", type=int, nargs="*", help="prefill/generate: 1 8 32; encoder: 1; train: 8")
    p.add_argument("--text", choices=["small", "preset"], help="language model: the preset's (CUDA default) or small")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument(
        "--budget", type=float, default=60.0, help="seconds of timed runs per configuration (at least 1 run)"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--channels-last", action="store_true", help="encoder: our ConvNeXt in channels-last format")
    p.add_argument("--output", help="results JSON")
    p.add_argument("--plot", help="encoder: PNG of cost against resolution")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..atomic import write_text_atomic
    from ..bench import encoder, lm, report, train

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    text = args.text or ("preset" if args.device.startswith("cuda") else "small")
    common = {"device": args.device, "dtype": dtype, "iters": args.iters, "budget_s": args.budget}
    if args.kind == "encoder":
        rows = encoder.bench_encoder(args.model, tuple(args.image_size or encoder.CONVNEXT_SIZES),
                                     tuple(encoder.CLIP_SIZES if args.clip_size is None else args.clip_size),
                                     batch=(args.batch_size or [1])[0], channels_last=args.channels_last, **common)  # fmt: skip
    elif args.kind in ("prefill", "generate"):
        rows = lm.bench_lm(args.kind, args.model, text, tuple(args.batch_size or (1, 8, 32)), args.new_tokens, **common)
    else:
        rows = train.bench_train(args.model, text, (args.batch_size or [8])[0], **common)
    table = report.TABLES[args.kind](rows)
    print(table)
    environment = {"torch": torch.__version__, "device": args.device, "dtype": args.dtype, "threads": torch.get_num_threads(),
                   "cpu": platform.processor() or platform.machine(),
                   "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}  # fmt: skip
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(args.output), json.dumps({"kind": args.kind, "model": args.model, "environment": environment,
                                                    "rows": rows, "markdown": table}, indent=2) + "\n")  # fmt: skip
    if args.plot:
        if args.kind != "encoder":
            raise ValueError("--plot draws encoder cost against resolution; use it with `convllava bench encoder`")
        report.plot_encoder(rows, args.plot)
    return 0
