"""The text conditioning of LoRA training: one instance prompt for every image, or each image's own
caption built from its metadata (`lora.caption: attributes`, dermsynth.traits.caption), so that a
LoRA learns what "dark skin" or "head neck" look like and generation can ask for them."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Prompts:
    """A step's text conditioning: `texts` are the distinct instance captions, then the class prompt;
    `of_image[i]` is instance image i's caption in `texts` (all 0 with one shared instance prompt)."""
    texts: list[str]
    of_image: torch.Tensor

    def context(self, rows: torch.Tensor, n_class: int, cond: torch.Tensor | None, text_encoder, ids: torch.Tensor,
                dtype: torch.dtype) -> torch.Tensor:
        """Encoder states for a batch: latent-cache `rows` (flip k of image i is row k * n_images + i), then
        `n_class` prior-preservation rows; from the frozen `cond` or through the trained `text_encoder`."""
        mine = self.of_image[rows % len(self.of_image)]
        if text_encoder is not None:
            which = torch.cat([mine, torch.full((n_class,), len(self.texts) - 1)]).to(ids.device)
            return text_encoder(ids[which])[0].to(dtype)
        if len(self.texts) == 2:  # one instance prompt: broadcast views, as a fixed caption always was
            return torch.cat([cond[0:1].expand(len(rows), -1, -1), cond[1:2].expand(n_class, -1, -1)])
        return torch.cat([cond[mine.to(cond.device)], cond[-1:].expand(n_class, -1, -1)])


def instance_prompts(instance_prompt: str, class_prompt: str, captions: list[str] | None) -> Prompts:
    """One instance prompt for every image, or each image's own caption (`lora.caption: attributes`)."""
    if captions is None:
        return Prompts([instance_prompt, class_prompt], torch.zeros(1, dtype=torch.long))
    distinct = sorted(set(captions))
    at = {c: k for k, c in enumerate(distinct)}
    return Prompts(distinct + [class_prompt], torch.tensor([at[c] for c in captions], dtype=torch.long))
