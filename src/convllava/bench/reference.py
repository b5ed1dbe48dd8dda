"""reference.py

A reference of the original ConvLLaVA forward, to measure our implementation against: transformers'
`ConvNextModel` as the tower (last hidden state, flattened), the same projector, and LLaVA's
`prepare_inputs_labels_for_multimodal` splicing loop (per sample: split the ids at each image token, embed
the text pieces, concatenate them with the image features, then pad the batch) feeding the language model with
`inputs_embeds`. Written from the description of the original code; weights are shared with our model.
"""

from __future__ import annotations

import torch
from transformers import ConvNextModel

from ..models import ConvLlavaForConditionalGeneration


class ReferenceConvLlava(torch.nn.Module):
    """The original forward, built around (and sharing weights with) one of our models."""

    def __init__(self, model: ConvLlavaForConditionalGeneration) -> None:
        super().__init__()
        self.model = model
        self.tower = ConvNextModel(model.config.vision_config).to(model.device).eval()
        missing = self.tower.load_state_dict(model.vision_tower.state_dict(), strict=False).missing_keys
        if any(not k.startswith("layernorm") for k in missing):
            raise ValueError(f"reference tower does not take our weights: missing {missing}")

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.tower(pixel_values, output_hidden_states=True).hidden_states[-1]
        return self.model.projector(hidden.flatten(2).transpose(1, 2))

    def splice(self, input_ids: torch.Tensor, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embed = self.model.get_input_embeddings()
        image_id = self.model.config.image_token_id
        rows, image_index = [], 0
        for ids in input_ids:
            positions = torch.where(ids == image_id)[0].tolist()
            # the original prompt holds one placeholder per image; ours holds N copies in a run: keep the first
            starts = [p for i, p in enumerate(positions) if i == 0 or positions[i - 1] != p - 1]
            pieces, cursor = [], 0
            for start in starts:
                pieces.append(embed(ids[cursor:start]))
                pieces.append(image_features[image_index])
                image_index += 1
                cursor = start
                while cursor < len(ids) and ids[cursor] == image_id:
                    cursor += 1
            pieces.append(embed(ids[cursor:]))
            rows.append(torch.cat(pieces))
        width = max(r.shape[0] for r in rows)
        batch = torch.zeros(len(rows), width, rows[0].shape[-1], dtype=rows[0].dtype, device=rows[0].device)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=rows[0].device)
        for i, row in enumerate(rows):  # left padding, as batched generation needs
            batch[i, width - row.shape[0] :] = row
            mask[i, width - row.shape[0] :] = 1
        return batch, mask

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        embeds, mask = self.splice(input_ids, self.encode_images(pixel_values))
        return self.model.lm_head(
            self.model.language_model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        )
