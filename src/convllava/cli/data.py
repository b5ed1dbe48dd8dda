"""data.py

`convllava data plan RECIPE` (records and disk per stage, nothing downloaded), `convllava data prepare RECIPE
--root DIR [--stage S] [--only DATASET]` (resumable, checksummed), `convllava data check RECIPE --root DIR
--stage S [--decode] [--workers N] [--write-filtered]` and `convllava data export RECIPE --root DIR --stage S
--format llava-next|internvl`.
"""

from __future__ import annotations

import argparse
import json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="plan / prepare / check / export a data recipe")
    p.add_argument("action", choices=["plan", "prepare", "check", "export"])
    p.add_argument("recipe", help="recipe YAML, e.g. recipes/convllava.yaml")
    p.add_argument("--root", help="data root (prepare / check / export)")
    p.add_argument("--stage", help="stage name (all stages when omitted, for plan / prepare)")
    p.add_argument("--variant", help="recipe variant, e.g. current")
    p.add_argument("--only", help="prepare: just this dataset")
    p.add_argument("--hub-root", help="prepare: a local folder standing in for the Hugging Face hub")
    p.add_argument("--decode", action="store_true", help="check: decode every image")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--write-filtered", action="store_true", help="check: write annotations without broken rows")
    p.add_argument("--format", choices=["llava-next", "internvl"], default="llava-next")
    p.set_defaults(func=run)


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def run(args: argparse.Namespace) -> int:
    from ..data.recipes import load_recipe
    from ..data.recipes.check import check
    from ..data.recipes.mix import export_internvl, export_llava_next
    from ..data.recipes.prepare import plan, prepare

    recipe = load_recipe(args.recipe)
    if args.action == "plan":
        result = plan(recipe, args.variant)
        for name, stage in result["stages"].items():
            expected = f" (recipe expects {stage['expect_total']:,})" if stage["expect_total"] is not None else ""
            print(f"{name}: {stage['records']:,} records{expected}; download {_gib(stage['download_bytes'])}, "
                  f"disk about {_gib(stage['disk_bytes'])}")  # fmt: skip
            for dataset, records in stage["datasets"].items():
                print(f"  {dataset}: {records:,}" if records is not None else f"  {dataset}: unknown")
        return 0
    if args.root is None:
        raise ValueError(f"convllava data {args.action} needs --root (the data root)")
    if args.action == "prepare":
        result = prepare(recipe, args.root, args.stage, args.only, args.variant, args.hub_root)
        print(json.dumps({"placed_files": sum(result["placed"].values()), "fixes": result["fixes"]}))
        return 0
    if args.stage is None:
        raise ValueError(f"convllava data {args.action} needs --stage")
    if args.action == "export":
        exporter = export_llava_next if args.format == "llava-next" else export_internvl
        print(exporter(recipe, args.stage, args.root, args.variant), end="")
        return 0
    result = check(recipe, args.root, args.stage, args.variant, args.decode, args.workers, args.write_filtered)
    for name, report in result["datasets"].items():
        broken = ", ".join(f"{k} {v}" for k, v in report["broken"].items() if v) or "none broken"
        count = "" if report["count_ok"] else f" (expected {report['expected_records']:,})"
        dropped = (
            f"; wrote {report['filtered']['path']} without {report['filtered']['dropped']} rows"
            if "filtered" in report
            else ""
        )
        print(f"{name}: {report['records']:,} records{count}; {broken}{dropped}")
    for key, problem in result["files"].items():
        print(f"file {key}: {problem}")
    print(f"mix sha256 {result['lock']['mix_sha256']}; {'OK' if result['ok'] else 'PROBLEMS FOUND'}")
    return 0 if result["ok"] else 1
