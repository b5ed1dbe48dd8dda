"""loading.py

One entry point for every checkpoint format: our own folders, and original ConvLLaVA / LLaVA folders
(converted in memory), plus the `convert` and `export --format llava` operations on disk.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from ...processing import ConvLlavaImageProcessor, ConvLlavaProcessor
from ...processing.tokenizer import add_image_token
from ..configuration_convllava import ConvLlavaConfig
from .checkpoint_io import CheckpointError, read_state_dict, write_state_dict
from .original import convert_original, export_original, is_original_checkpoint

#: The template each original family was trained and scored with, by its language model's type: `vicuna_v1` for
#: Llama / Vicuna (ConvLLaVA's three stages and LLaVA-1.5 / 1.6's instruction tuning pass `--version v1`, which
#: is `conv_vicuna_v1`, and LLaVA's own evaluation scripts and lmms-eval pass `--conv-mode vicuna_v1`; the
#: original CLI picks `llava_v1` from a "v1" in the model name, which differs in the system prompt's wording
#: only) and `mistral_instruct` for LLaVA-1.6 Mistral. A Llama-type LM whose tokenizer has ChatML's
#: `<|im_start|>` (LLaVA-1.6 34B, Nous-Hermes-2-Yi) gets `chatml_direct`; the original CLI picks these from
#: "mistral" / "34b" in the model name.
DEFAULT_TEMPLATES: dict[str, str] = {"llama": "vicuna_v1", "mistral": "mistral_instruct"}
CHATML_TOKEN = "<|im_start|>"


def default_template(config: ConvLlavaConfig, tokenizer: Any) -> str:
    """The template an original checkpoint was trained with (`DEFAULT_TEMPLATES`, or ChatML by its tokenizer)."""
    text_type = config.text_config.model_type
    if text_type == "llama" and CHATML_TOKEN in tokenizer.get_vocab():
        return "chatml_direct"
    return DEFAULT_TEMPLATES.get(text_type, "vicuna_v1")


_TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _original_processor(
    folder: Path, config: ConvLlavaConfig, tower: Path | None, template: str | None
) -> ConvLlavaProcessor:
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token is None:  # the original training code sets pad = unk (id 0)
        tokenizer.pad_token = tokenizer.unk_token
    config.image_token_id = add_image_token(tokenizer)
    image_kwargs: dict[str, Any] = {}
    if tower is not None and (tower / "preprocessor_config.json").is_file():
        pre = json.loads((tower / "preprocessor_config.json").read_text())
        image_kwargs = {k: pre[k] for k in ("image_mean", "image_std", "resample") if k in pre}
    image_processor = ConvLlavaImageProcessor(
        size=config.image_size,
        resize_mode=config.image_resize_mode,
        stride=config.vision_stride,
        grid_pinpoints=config.image_grid_pinpoints,
        **image_kwargs,
    )
    template = template or default_template(config, tokenizer)
    return ConvLlavaProcessor(image_processor, tokenizer, template=template, projector_type=config.projector_type)


def load_original(
    folder: str | Path, dtype: torch.dtype | None = None, template: str | None = None
) -> tuple[Any, ConvLlavaProcessor]:
    """An original-layout checkpoint -> (ConvLlavaForConditionalGeneration, ConvLlavaProcessor).

    `template` defaults to the one the family was trained with (`default_template`).
    """
    from ..modeling_convllava import ConvLlavaForConditionalGeneration

    folder = Path(folder)
    config, state, tower = convert_original(folder)
    processor = _original_processor(folder, config, tower, template)
    model = _build(ConvLlavaForConditionalGeneration, config, state, folder, dtype)
    return model, processor


def _build(cls: Any, config: ConvLlavaConfig, state: dict[str, torch.Tensor], source: Path, dtype: Any) -> Any:
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in cls(config).state_dict().items()}
    for key, value in state.items():
        if key not in expected:
            raise CheckpointError(f"{source}: key {key!r} has no place in the ConvLLaVA model")
        if tuple(value.shape) != expected[key]:
            raise CheckpointError(
                f"{source}: key {key!r} has shape {tuple(value.shape)}, the model expects {expected[key]} "
                "(is the vision tower the one this checkpoint was trained with?)"
            )
    missing = sorted(k for k in expected if k not in state)
    if config.tie_word_embeddings and "lm_head.weight" in missing:
        missing.remove("lm_head.weight")
    if missing:
        raise CheckpointError(f"{source}: the checkpoint lacks {missing[0]!r} ({len(missing)} key(s) missing)")
    model = cls.from_pretrained(None, config=config, state_dict=state, dtype=dtype)
    return model.eval()


def convert_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Original layout -> our Hugging Face-native folder (safetensors, config, processor)."""
    src, dst = Path(src), Path(dst)
    if not is_original_checkpoint(src):
        raise CheckpointError(
            f"{src} is not an original LLaVA/ConvLLaVA checkpoint (config.json needs mm_vision_tower)"
        )
    model, processor = load_original(src)
    model.save_pretrained(dst)
    processor.save_pretrained(dst)
    return dst


def export_checkpoint(src: str | Path, dst: str | Path, fmt: str = "llava") -> Path:
    """Our folder -> the original layout: LLM + projector in `dst`, the ConvNeXt in `dst/vision_tower`."""
    if fmt != "llava":
        raise ValueError(f"unknown export format {fmt!r}; supported: 'llava'")
    src, dst = Path(src), Path(dst)
    config = ConvLlavaConfig.from_pretrained(src)
    original, llm, vision_config, vision = export_original(config, read_state_dict(src), "vision_tower")
    tower = dst / "vision_tower"
    write_state_dict(llm, dst, fmt="bin")
    write_state_dict(vision, tower, fmt="bin")
    (dst / "config.json").write_text(json.dumps(original, indent=2))
    (tower / "config.json").write_text(json.dumps(vision_config, indent=2, default=str))
    processor = ConvLlavaProcessor.from_pretrained(src)
    ip = processor.image_processor
    size = {"height": ip.size, "width": ip.size}
    (tower / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": size, "size": {"shortest_edge": ip.size}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": ip.image_mean,
        "image_std": ip.image_std, "resample": ip.resample, "rescale_factor": ip.rescale_factor,
        "image_processor_type": "CLIPImageProcessor",
    }, indent=2))  # fmt: skip
    processor.tokenizer.save_pretrained(dst)
    for name in _TOKENIZER_FILES:  # keep the original tokenizer files when the source has them
        if (src / name).is_file() and not (dst / name).exists():
            shutil.copy(src / name, dst / name)
    return dst


def quantization_config(bits: int | None) -> Any:
    """bitsandbytes 4-bit (NF4, double quantisation) or 8-bit for the language model; the vision tower,
    projector and lm_head stay in the compute dtype (LLaVA's 'expected Half but found Float' lesson)."""
    if bits is None:
        return None
    if bits not in (4, 8):
        raise ValueError(f"quantisation must be 4 or 8 bits, got {bits}")
    if not torch.cuda.is_available():
        raise ValueError(f"--load-in-{bits}bit needs a CUDA GPU and bitsandbytes; on CPU load in float32 or bfloat16")
    from transformers import BitsAndBytesConfig

    skip = ["vision_tower", "projector", "lm_head"]
    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=skip,
    )  # fmt: skip


def _model_type(name_or_path: str | Path) -> str | None:
    """model_type from the checkpoint's config.json (local, or fetched from the Hub); None if there is none."""
    path = Path(name_or_path) / "config.json"
    if path.is_file():
        return json.loads(path.read_text()).get("model_type")
    try:
        from transformers import PretrainedConfig

        return PretrainedConfig.get_config_dict(str(name_or_path))[0].get("model_type")
    except Exception:  # offline / unknown: let the convllava loader report it
        return None


def load(
    name_or_path: str | Path,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    quantize_bits: int | None = None,
    template: str | None = None,
) -> Any:
    """Open any supported checkpoint -- ours, or an original ConvLLaVA / LLaVA-1.5 / 1.6 folder or Hub id -- as a
    `ConvLlavaPipeline` (which also unpacks as `model, processor`). `quantize_bits` = 4 / 8 (CUDA). `template`
    replaces the conversation template the checkpoint comes with (a `TEMPLATES` name)."""
    from ...inference.pipeline import ConvLlavaPipeline
    from ..modeling_convllava import ConvLlavaForConditionalGeneration
    from .original import locate_original

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    quantization = quantization_config(quantize_bits)
    original = locate_original(name_or_path)
    if original is not None:
        if quantization is not None:
            raise ValueError("quantised loading needs our format: run `convllava convert` first, then load that folder")
        model, processor = load_original(original, dtype=dtype, template=template)
    elif _model_type(name_or_path) not in (None, "convllava"):
        if template is not None:
            raise ValueError(
                f"template={template!r}: {name_or_path} is a transformers model; its processor's own chat template is used"
            )
        # any other image-text-to-text checkpoint (llava-hf, ...) through the transformers Auto classes
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from ...inference.hf_adapter import HFProcessorAdapter

        kwargs_hf: dict[str, Any] = {"dtype": dtype}
        if quantization is not None:
            kwargs_hf.update(quantization_config=quantization, device_map=device or "auto")
        model = AutoModelForImageTextToText.from_pretrained(str(name_or_path), **kwargs_hf).eval()
        processor = HFProcessorAdapter(AutoProcessor.from_pretrained(str(name_or_path)))
    else:
        kwargs: dict[str, Any] = {"dtype": dtype}
        if quantization is not None:  # bitsandbytes places the weights; never call .to() on it
            kwargs.update(quantization_config=quantization, device_map=device or "auto")
        model = ConvLlavaForConditionalGeneration.from_pretrained(str(name_or_path), **kwargs).eval()
        processor = ConvLlavaProcessor.from_pretrained(str(name_or_path))
        if template is not None:
            processor = processor.with_template(template)
    if device is not None and quantization is None:
        model = model.to(device)
    return ConvLlavaPipeline(model, processor)
