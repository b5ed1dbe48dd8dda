"""convert.py

`convllava convert SRC DST` (original ConvLLaVA / LLaVA layout -> ours) and
`convllava export --format llava SRC DST` (ours -> the original layout, for the original code and
lmms-eval's `llava` model).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    convert = subparsers.add_parser("convert", help="convert an original ConvLLaVA/LLaVA checkpoint to our format")
    convert.add_argument("src", help="original checkpoint folder (its mm_vision_tower must resolve)")
    convert.add_argument("dst", help="output folder")
    convert.set_defaults(func=run_convert)
    export = subparsers.add_parser("export", help="write one of our models in another layout")
    export.add_argument("--format", default="llava", choices=["llava"], help="target layout")
    export.add_argument("src", help="our model folder")
    export.add_argument("dst", help="output folder (the ConvNeXt goes to DST/vision_tower)")
    export.set_defaults(func=run_export)


def run_convert(args: argparse.Namespace) -> int:
    from ..models.zoo import convert_checkpoint

    print(f"converted {args.src} -> {convert_checkpoint(args.src, args.dst)}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..models.zoo import export_checkpoint

    print(f"exported {args.src} -> {export_checkpoint(args.src, args.dst, fmt=args.format)} ({args.format} layout)")
    return 0
