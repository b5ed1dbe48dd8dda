"""main.py

The `convllava` console script: one argparse parser, one sub-module per sub-command.
Errors a user can fix (bad names, paths, inputs) are printed as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import bench, convert, data, demo, evaluate, generate, info, serve, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convllava", description="ConvLLaVA toolkit")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    bench.add_parser(subparsers)
    data.add_parser(subparsers)
    demo.add_parser(subparsers)
    info.add_parser(subparsers)
    train.add_parser(subparsers)
    convert.add_parser(subparsers)
    generate.add_parser(subparsers)
    evaluate.add_parser(subparsers)
    serve.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        message = " ".join(str(err).split())  # one line, even when a library's message has several
        print(f"convllava {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
