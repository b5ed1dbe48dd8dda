"""demo.py

`convllava demo [--output runs/demo] [--quick] [--ablation resolution]`: the whole system on a CPU in one
command (synthetic data, three training stages, evaluation, a chat answer). Re-running resumes.
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="train, evaluate and chat with a tiny model on synthetic data (CPU)")
    p.add_argument("--output", default="runs/demo", help="run folder (re-running resumes finished steps)")
    p.add_argument("--quick", action="store_true", help="a smoke-test size (about 2 minutes, no score targets)")
    p.add_argument("--ablation", choices=["resolution"], help="also train the 4-stage tower at half resolution")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.runner import run_demo

    results = run_demo(args.output, quick=args.quick, ablation=args.ablation, seed=args.seed)
    print(
        json.dumps(
            {"headline": results["headline"], "seconds": results["seconds"], "report": f"{args.output}/report.md"}
        )
    )
    return 0
