"""generate.py

`convllava generate --model M --input questions.jsonl --output answers.jsonl [--batch-size B]` (resumable
batch answering) and `convllava chat --model M [--image PATH]` (an interactive terminal chat that
streams; `/image PATH`, `/reset`, `/save FILE`, `/quit`).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    gen = subparsers.add_parser("generate", help="answer a JSONL file of questions (resumable)")
    gen.add_argument("--model", required=True, help="model folder, Hub id, or original ConvLLaVA / LLaVA checkpoint")
    gen.add_argument("--input", required=True, help='JSONL rows {"id", "question" | "messages", "image"?}')
    gen.add_argument("--output", required=True, help="JSONL answers, appended as they come")
    gen.add_argument("--image-folder", help="root for relative image paths")
    gen.add_argument("--batch-size", type=int, default=8)
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    gen.add_argument("--dtype", default=None, help="float32 / bfloat16 / float16")
    gen.add_argument("--device", default=None, help="cpu / cuda")
    gen.add_argument(
        "--template",
        default=None,
        help="conversation template (default: the checkpoint's own; mistral_instruct, chatml_direct, ...)",
    )
    gen.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes NF4 language model (CUDA)")
    gen.add_argument("--load-in-8bit", action="store_true", help="bitsandbytes int8 language model (CUDA)")
    gen.set_defaults(func=run_generate)

    chat = subparsers.add_parser("chat", help="interactive chat in the terminal")
    chat.add_argument("--model", required=True)
    chat.add_argument("--image", action="append", default=[], help="image for the first question (repeatable)")
    chat.add_argument("--max-new-tokens", type=int, default=512)
    chat.add_argument("--temperature", type=float, default=0.0)
    chat.add_argument("--dtype", default=None)
    chat.add_argument("--device", default=None)
    chat.add_argument(
        "--template",
        default=None,
        help="conversation template (default: the checkpoint's own; mistral_instruct, chatml_direct, ...)",
    )
    chat.add_argument("--load-in-4bit", action="store_true")
    chat.add_argument("--load-in-8bit", action="store_true")
    chat.set_defaults(func=run_chat)


def quantize_bits(args: argparse.Namespace) -> int | None:
    if getattr(args, "load_in_4bit", False) and getattr(args, "load_in_8bit", False):
        raise ValueError("choose one of --load-in-4bit and --load-in-8bit")
    return 4 if getattr(args, "load_in_4bit", False) else 8 if getattr(args, "load_in_8bit", False) else None


def _sampling(args: argparse.Namespace) -> dict:
    if args.temperature > 0:
        return {"max_new_tokens": args.max_new_tokens, "do_sample": True, "temperature": args.temperature}
    return {"max_new_tokens": args.max_new_tokens, "do_sample": False}


def run_generate(args: argparse.Namespace) -> int:
    from .. import load
    from ..inference.batch import generate_file

    pipeline = load(
        args.model, dtype=args.dtype, device=args.device, quantize_bits=quantize_bits(args), template=args.template
    )
    counts = generate_file(
        pipeline, args.input, args.output, batch_size=args.batch_size, image_folder=args.image_folder, **_sampling(args)
    )
    print(json.dumps(counts))
    return 0


HELP = "commands: /image PATH (attach to the next question), /reset, /save FILE, /quit"


def run_chat(args: argparse.Namespace, stdin=sys.stdin, stdout=sys.stdout) -> int:
    from .. import load

    pipeline = load(
        args.model, dtype=args.dtype, device=args.device, quantize_bits=quantize_bits(args), template=args.template
    )
    messages: list[dict] = []
    images: list[str] = []
    pending: list[str] = list(args.image)
    print(HELP, file=stdout, flush=True)
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            command, _, rest = line.partition(" ")
            if command == "/quit":
                break
            if command == "/reset":
                messages, images, pending = [], [], []
                print("(conversation cleared)", file=stdout, flush=True)
            elif command == "/image" and rest:
                pending.append(rest.strip())
                print(f"(image {rest.strip()} attached to the next question)", file=stdout, flush=True)
            elif command == "/save" and rest:
                with open(rest.strip(), "w", encoding="utf-8") as handle:
                    json.dump({"messages": messages, "images": images}, handle, indent=2)
                print(f"(saved to {rest.strip()})", file=stdout, flush=True)
            else:
                print(HELP, file=stdout, flush=True)
            continue
        content = "<image>\n" * len(pending) + line
        messages.append({"role": "user", "content": content})
        images += pending
        pending = []
        print("assistant: ", end="", file=stdout, flush=True)
        answer = ""
        for piece in pipeline.stream(messages, images, **_sampling(args)):
            answer += piece
            print(piece, end="", file=stdout, flush=True)
        print(file=stdout, flush=True)
        messages.append({"role": "assistant", "content": answer.strip()})
    return 0
