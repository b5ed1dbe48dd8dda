"""original.py

Open checkpoints in the original ConvLLaVA / LLaVA layout and convert them to ours (and back).

The original layout (`LlavaLlamaForCausalLM`, config `model_type` "llava" or "llava_llama"; LLaVA-1.6 Mistral's
`LlavaMistralForCausalLM`, "llava_mistral", the same keys on a Mistral LM): Llama keys
`model.embed_tokens / model.layers / model.norm / lm_head`, the projector as `model.mm_projector.{0,2}`,
and the vision tower in a separate ConvNeXt folder named by `mm_vision_tower` (its own config.json,
preprocessor_config.json and weights with `ConvNextModel` key names). Vision keys that the LLM
checkpoint may also carry (`model.vision_tower.vision_tower.*`) are used only when that folder cannot
be found -- the original code ignores them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import (
    CLIPVisionConfig,
    ConvNextConfig,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    SiglipVisionConfig,
)

from ..configuration_convllava import ConvLlavaConfig
from ..projectors import PROJECTORS, get_projector_spec
from ..vision.dense import default_groups
from .checkpoint_io import CheckpointError, read_state_dict

logger = logging.getLogger(__name__)

#: original model_type -> (its language model's config class, its architectures entry)
_TEXT_MODELS: dict[str, tuple[type[PretrainedConfig], str]] = {
    "llava": (LlamaConfig, "LlavaLlamaForCausalLM"),
    "llava_llama": (LlamaConfig, "LlavaLlamaForCausalLM"),
    "llava_mistral": (MistralConfig, "LlavaMistralForCausalLM"),
}
ORIGINAL_MODEL_TYPES: tuple[str, ...] = tuple(_TEXT_MODELS)
_VISION_IN_LLM = "model.vision_tower.vision_tower."
#: Original config keys that describe the multimodal wrapper, not the Llama text model.
_WRAPPER_KEYS = (
    "mm_", "tune_", "freeze_", "image_", "use_mm_proj", "vision_tower_lr", "tokenizer_", "architectures",
    "model_type", "_name_or_path", "transformers_version", "unfreeze_", "s2", "mm_patch_merge_type",
)  # fmt: skip


def read_config_json(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{str(path)!r} is missing")
    return json.loads(path.read_text())


def is_original_checkpoint(folder: str | Path) -> bool:
    """True for a local folder in the original LLaVA layout (our own folders say model_type "convllava")."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return False
    config = json.loads(path.read_text())
    return config.get("model_type") in ORIGINAL_MODEL_TYPES and "mm_vision_tower" in config


def locate_original(name_or_path: str | Path) -> Path | None:
    """A local folder, or a Hub repo (downloaded), in the original layout; None for anything else."""
    path = Path(name_or_path)
    if path.is_dir():
        return path if is_original_checkpoint(path) else None
    if not isinstance(name_or_path, str) or name_or_path.count("/") != 1:
        return None
    try:
        from huggingface_hub import hf_hub_download, snapshot_download

        config = json.loads(Path(hf_hub_download(name_or_path, "config.json")).read_text())
        if config.get("model_type") in ORIGINAL_MODEL_TYPES and "mm_vision_tower" in config:
            return Path(snapshot_download(name_or_path))
    except Exception:  # offline or not a repo: let transformers report it
        return None
    return None


def resolve_vision_tower(name: str, checkpoint: Path) -> Path | None:
    """The vision-tower folder: a path (absolute or relative to the checkpoint) or a Hub id (downloaded)."""
    for candidate in (Path(name), checkpoint / name):
        if (candidate / "config.json").is_file():
            return candidate
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=["*.json", "*.bin", "*.safetensors"]))
    except Exception as err:  # offline, unknown repo, no access
        logger.warning("vision tower %r could not be resolved (%s)", name, err)
        return None


def _text_config(original: dict[str, Any]) -> PretrainedConfig:
    kept = {k: v for k, v in original.items() if not k.startswith(_WRAPPER_KEYS)}
    return _TEXT_MODELS[original["model_type"]][0](**kept)


def _vision_config_from_keys(state: dict[str, torch.Tensor], image_size: int) -> ConvNextConfig:
    """Infer a ConvNeXt config from weights alone (when only in-checkpoint vision keys exist)."""
    widths, depths = [], []
    stage = 0
    while f"encoder.stages.{stage}.layers.0.dwconv.weight" in state:
        widths.append(state[f"encoder.stages.{stage}.layers.0.dwconv.weight"].shape[0])
        depths.append(1 + max(int(k.split(".")[4]) for k in state if k.startswith(f"encoder.stages.{stage}.layers.")))
        stage += 1
    if not widths:
        raise CheckpointError("the checkpoint's vision keys hold no ConvNeXt stages")
    patch = state["embeddings.patch_embeddings.weight"].shape[-1]
    return ConvNextConfig(
        num_stages=len(widths), depths=depths, hidden_sizes=widths, patch_size=patch, layer_norm_eps=1e-12,
        layer_scale_init_value=1e-6, image_size=image_size,
    )  # fmt: skip


def _image_mode(original: dict[str, Any], folder: Path) -> tuple[str, list[list[int]] | None]:
    """(image_resize_mode, (height, width) pinpoints) from `image_aspect_ratio` and LLaVA-1.6's anyres keys."""
    aspect = original.get("image_aspect_ratio", "pad")
    if aspect != "anyres":
        return ("pad" if aspect == "pad" else "resize"), None
    merge = original.get("mm_patch_merge_type", "flat")
    if merge != "spatial_unpad":
        raise CheckpointError(
            f"{folder}/config.json: image_aspect_ratio 'anyres' with mm_patch_merge_type {merge!r}; convllava reads "
            "LLaVA-1.6's 'spatial_unpad' only"
        )
    pinpoints = original.get("image_grid_pinpoints")
    if not isinstance(pinpoints, list) or not all(isinstance(p, list) and len(p) == 2 for p in pinpoints):
        raise CheckpointError(
            f"{folder}/config.json: image_grid_pinpoints {pinpoints!r} is not a list of [width, height] pairs "
            "(LLaVA-1.6's form; LLaVA-NeXT's '(AxB),(CxD)' grid ranges are not read)"
        )
    return "anyres", [[int(h), int(w)] for w, h in pinpoints]  # the original writes (w, h)


def _feature_layer(tower_type: str, original: dict[str, Any]) -> int:
    """CLIP: `mm_vision_select_layer`. SigLIP: -2 whatever the config says -- LLaVA-NeXT's and the Dense Connector's
    SigLIP towers delete the last layer and take the output of the rest. ConvNeXt: its last stage."""
    if tower_type == "clip":
        return int(original.get("mm_vision_select_layer", -1))
    return -2 if tower_type == "siglip" else -1


def _image_size(tower: Path | None, original: dict[str, Any]) -> int:
    """S from the tower's preprocessor_config (`crop_size`, a dict or the old int form), else the LLM config."""
    if tower is not None and (tower / "preprocessor_config.json").is_file():
        pre = json.loads((tower / "preprocessor_config.json").read_text())
        crop = pre.get("crop_size", pre.get("size"))
        if isinstance(crop, dict):
            return int(crop.get("height", crop.get("shortest_edge")))
        return int(crop)
    return int(original.get("mm_vision_resolution", 768))


#: ViT tower folders the original code names in `mm_vision_tower`: model_type -> (our tower type, its vision
#: config class, the key prefixes our tower loads). SigLIP is LLaVA-NeXT's and the Dense Connector's.
_VIT_FOLDERS: dict[str, tuple[str, type[PretrainedConfig], tuple[str, ...]]] = {
    "clip": ("clip", CLIPVisionConfig, ("embeddings.", "pre_layrnorm.", "encoder.")),
    "clip_vision_model": ("clip", CLIPVisionConfig, ("embeddings.", "pre_layrnorm.", "encoder.")),
    "siglip": ("siglip", SiglipVisionConfig, ("embeddings.", "encoder.")),
    "siglip_vision_model": ("siglip", SiglipVisionConfig, ("embeddings.", "encoder.")),
}


def _tower_from_folder(
    tower: Path, tower_config: dict[str, Any], state: dict[str, torch.Tensor], image_size: int
) -> tuple[str, Any, dict[str, torch.Tensor]]:
    """(tower type, vision config, our vision keys) for a ConvNeXt, CLIP or SigLIP tower folder."""
    model_type = tower_config.get("model_type")
    if model_type == "convnext":
        config = ConvNextConfig.from_dict({**tower_config, "image_size": image_size})
        return "convnext", config, {k: v for k, v in state.items() if not k.startswith("layernorm.")}
    if model_type in _VIT_FOLDERS:  # a whole CLIPModel / SiglipModel folder, or only its vision model
        tower_type, config_class, prefixes = _VIT_FOLDERS[model_type]
        sub = tower_config.get("vision_config", tower_config)
        config = config_class(**{k: v for k, v in sub.items() if k not in ("model_type", "architectures")})
        state = {k.removeprefix("vision_model."): v for k, v in state.items()}
        vision = {k: v for k, v in state.items() if k.startswith(prefixes) and not k.endswith("position_ids")}
        return tower_type, config, vision
    raise CheckpointError(f"vision tower {tower} is a {model_type!r} model; supported: convnext, clip, siglip")


def convert_original(
    folder: str | Path, image_token_id: int | None = None
) -> tuple[ConvLlavaConfig, dict[str, torch.Tensor], Path | None]:
    """Original checkpoint folder -> (our config, our state dict, vision-tower folder used or None)."""
    folder = Path(folder)
    original = read_config_json(folder)
    if original.get("model_type") not in ORIGINAL_MODEL_TYPES:
        raise CheckpointError(
            f"{folder}/config.json has model_type {original.get('model_type')!r}, not an original LLaVA layout"
        )
    projector_type = original.get("mm_projector_type", "linear")
    llm_state = read_state_dict(folder)
    tower = resolve_vision_tower(str(original["mm_vision_tower"]), folder)
    image_size = _image_size(tower, original)
    tower_type = "convnext"
    if tower is not None:
        tower_config = read_config_json(tower)
        vision_state = read_state_dict(tower)
        tower_type, vision_config, vision_state = _tower_from_folder(tower, tower_config, vision_state, image_size)
    else:
        vision_state = {k[len(_VISION_IN_LLM) :]: v for k, v in llm_state.items() if k.startswith(_VISION_IN_LLM)}
        if not vision_state or any(k.startswith("vision_model.") for k in vision_state):
            raise CheckpointError(
                f"vision tower {original['mm_vision_tower']!r} (config key mm_vision_tower) was not found and "
                f"{folder} holds no ConvNeXt vision weights; download it or point mm_vision_tower at a local folder"
            )
        vision_state = {k: v for k, v in vision_state.items() if not k.startswith("layernorm.")}
        vision_config = _vision_config_from_keys(vision_state, image_size)
    text_config = _text_config(original)
    resize_mode, pinpoints = _image_mode(original, folder)
    dense = original.get("mm_dense_connector_type")  # the Dense Connector's fork; "none" when unused
    dense = None if dense in (None, "none", "None") else dense
    config = ConvLlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        vision_tower_type=tower_type,
        vision_feature_layer=_feature_layer(tower_type, original),
        vision_feature_select=original.get("mm_vision_select_feature", "patch"),
        dense_connector=dense,
        projector_type=projector_type,
        image_token_id=image_token_id if image_token_id is not None else text_config.vocab_size,
        image_size=image_size,
        image_resize_mode=resize_mode,
        image_grid_pinpoints=pinpoints,
    )
    state: dict[str, torch.Tensor] = {f"model.vision_tower.{k}": v for k, v in vision_state.items()}
    for key, value in llm_state.items():
        if key.startswith(_VISION_IN_LLM):
            continue
        if key == "model.image_newline":  # LLaVA-1.6
            state[key] = value
        elif key.startswith("model.mm_projector."):
            state["model.projector." + key[len("model.mm_projector.") :]] = value
        elif key.startswith("model."):
            state["model.language_model." + key[len("model.") :]] = value
        elif key.startswith("lm_head."):
            state[key] = value
        else:
            raise CheckpointError(f"{folder}: key {key!r} does not fit the original LLaVA layout")
    return config, state, tower


def export_original(
    config: ConvLlavaConfig, state: dict[str, torch.Tensor], vision_tower_name: str = "vision_tower"
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    """Our (config, state) -> (original config.json, LLM state, vision config.json, vision state)."""
    if not get_projector_spec(config.projector_type).in_original_llava:
        known = sorted(name for name, spec in PROJECTORS.items() if spec.in_original_llava)
        raise ValueError(
            f"projector_type {config.projector_type!r} has no counterpart in the original LLaVA code "
            f"(it builds {known}); keep this model in the convllava format"
        )
    if config.vision_tower_type not in ("convnext", "clip"):
        raise ValueError(
            f"vision_tower_type {config.vision_tower_type!r}: the original LLaVA format is written for the ConvNeXt "
            "(ConvLLaVA) and CLIP (LLaVA-1.5) towers only; keep this model in the convllava format"
        )
    if config.dense_connector_groups and config.dense_connector_groups != default_groups(
        config.dense_connector, config.vision_config.num_hidden_layers
    ):
        raise ValueError(
            f"dense_connector_groups={config.dense_connector_groups}: the original Dense Connector code uses fixed "
            "layers; keep this model in the convllava format"
        )
    llm: dict[str, torch.Tensor] = {}
    vision: dict[str, torch.Tensor] = {}
    vision_prefix = "vision_model." if config.vision_tower_type == "clip" else ""  # CLIPVisionModel's names
    for key, value in state.items():
        if key.startswith("model.vision_tower."):
            vision[vision_prefix + key[len("model.vision_tower.") :]] = value
        elif key.startswith("model.projector."):
            llm["model.mm_projector." + key[len("model.projector.") :]] = value
        elif key.startswith("model.language_model."):
            llm["model." + key[len("model.language_model.") :]] = value
        else:  # lm_head, model.image_newline
            llm[key] = value
    text_type = config.text_config.model_type
    by_text = {cls.model_type: (model_type, arch) for model_type, (cls, arch) in _TEXT_MODELS.items()}
    if text_type not in by_text:
        raise ValueError(
            f"a {text_type!r} language model has no original LLaVA layout (it has {sorted(by_text)}); keep this "
            "model in the convllava format"
        )
    model_type, architecture = by_text[text_type]
    text = config.text_config.to_dict()
    for drop in ("architectures", "model_type", "_name_or_path", "transformers_version", "dtype", "torch_dtype"):
        text.pop(drop, None)
    original = {
        **text,
        "architectures": [architecture],
        "model_type": model_type,
        "mm_vision_tower": vision_tower_name,
        "mm_hidden_size": config.vision_hidden_size,
        "mm_projector_type": config.projector_type,
        "mm_vision_select_layer": config.vision_feature_layer,
        "mm_vision_select_feature": config.vision_feature_select,
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "mm_patch_merge_type": "spatial_unpad" if config.image_resize_mode == "anyres" else "flat",
        "image_aspect_ratio": config.image_resize_mode if config.image_resize_mode in ("pad", "anyres") else "resize",
        "tokenizer_model_max_length": 2048,
        "tokenizer_padding_side": "right",
        "use_mm_proj": True,
    }
    if config.dense_connector is not None:
        original["mm_dense_connector_type"] = config.dense_connector
    if config.image_resize_mode == "anyres":
        original["image_grid_pinpoints"] = [[w, h] for h, w in config.image_grid_pinpoints]  # (w, h), as it reads them
    vision_config = config.vision_config.to_dict()
    vision_config["model_type"] = "clip_vision_model" if config.vision_tower_type == "clip" else "convnext"
    return original, llm, vision_config, vision
