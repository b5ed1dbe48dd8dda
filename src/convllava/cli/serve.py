"""serve.py

`convllava serve --model M [--host 127.0.0.1] [--port 8000] [limits...]`: the OpenAI-compatible API and
the chat page, with uvicorn.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="OpenAI-compatible chat API and web page")
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--name", default=None, help="model id reported by /v1/models (default: the model path)")
    p.add_argument("--dtype", default=None)
    p.add_argument("--device", default=None)
    p.add_argument(
        "--template",
        default=None,
        help="conversation template (default: the checkpoint's own; mistral_instruct, chatml_direct, ...)",
    )
    p.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes NF4 language model (CUDA)")
    p.add_argument("--load-in-8bit", action="store_true", help="bitsandbytes int8 language model (CUDA)")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--allow-remote-images", action="store_true", help="let requests name http(s) image URLs")
    p.add_argument(
        "--allow-local-files", type=Path, default=None, metavar="DIR", help="let requests name files under DIR"
    )
    p.add_argument("--max-request-bytes", type=int, default=20_000_000)
    p.add_argument("--max-image-pixels", type=int, default=40_000_000)
    p.add_argument("--max-prompt-tokens", type=int, default=4096)
    p.add_argument("--max-tokens", type=int, default=1024, help="upper bound on a request's max_tokens")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError as err:
        raise ValueError("serving needs fastapi and uvicorn: pip install 'convllava[serve]'") from err
    from .. import load
    from ..serving import ServerLimits, create_app
    from .generate import quantize_bits

    limits = ServerLimits(
        max_request_bytes=args.max_request_bytes, max_image_pixels=args.max_image_pixels,
        max_prompt_tokens=args.max_prompt_tokens, max_tokens=args.max_tokens,
        allow_remote_images=args.allow_remote_images, local_files_root=args.allow_local_files,
    )  # fmt: skip
    pipeline = load(
        args.model, dtype=args.dtype, device=args.device, quantize_bits=quantize_bits(args), template=args.template
    )
    app = create_app(pipeline, args.name or str(args.model), limits, max_batch_size=args.max_batch_size)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0
