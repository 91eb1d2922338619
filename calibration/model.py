"""The embedded model's parts: its configuration, the prompt encoder, and the PixArt denoiser; saving and loading.

Layout on disk (diffusers-like, everything safetensors)::

    <dir>/transformer/   PixArtTransformer2DModel.save_pretrained
    <dir>/text_encoder/  config.json + model.safetensors
    <dir>/scheduler/     FlowMatchEulerDiscreteScheduler.save_pretrained
    <dir>/model_index.json  the ShapesModelConfig and what trained the weights
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from accel.calibration import grammar as g

DEFAULT_DIR = Path(__file__).parent / "data" / "shapes-dit"


@dataclass
class ShapesModelConfig:
    """Sizes of the embedded model. The defaults are the shipped model."""

    patch_size: int = 4  # 4x4-pixel tokens (8x8 = 64 tokens): cheap enough for a wide model on a CPU
    num_layers: int = 10  # PixArt blocks (self-attention, cross-attention to the prompt, feed-forward)
    num_heads: int = 4
    head_dim: int = 32
    text_dim: int = 64  # width of the prompt encoder (the transformer's caption_channels)
    text_layers: int = 2
    text_heads: int = 4
    text_attention: str = "clause"  # "clause": each word attends only within its own object phrase (see encoder)
    guidance_scale: float = 3.0  # the pipeline's default classifier-free guidance scale
    extra: dict = field(default_factory=dict)  # provenance: training command, steps, measured accuracies


TEXT_ATTENTION = ("clause", "full")


def clause_ids(token_ids: torch.Tensor) -> torch.Tensor:
    """Clause index of every token (B, L): 0 for BOS and the first object phrase, +1 from each 'and' and from the
    'on' that starts the background phrase. Padding continues the last clause; the all-padding prompt is one clause."""
    starts = (token_ids == g.TOKEN_IDS["and"]) | (token_ids == g.TOKEN_IDS["on"])
    return starts.long().cumsum(1)


class ShapesTextEncoder(nn.Module):
    """Learned embeddings of the closed grammar vocabulary + positions, then a small transformer encoder.

    Input token ids (B, MAX_TOKENS) from grammar.tokenize; output (B, MAX_TOKENS, dim). The denoiser attends to
    all tokens, padding too: padding is a learned token, and the all-padding prompt is the unconditional one.

    attention="clause" lets each word attend only to the words of its own clause (one object phrase, or the
    background phrase). Every word of "a small red triangle at the top left" then carries the whole phrase, so
    an image patch at the top left finds its object's colour and shape by matching "top left" in one
    cross-attention lookup. With "full" attention the shipped-size encoder had not learned that binding after
    7,339 steps (a linear probe read an object's corner from its colour word 50% of the time, chance 25%), and
    two-object prompts came out with swapped or merged attributes.
    """

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 4, attention: str = "clause"):
        super().__init__()
        self.heads = heads
        self.config = {"dim": dim, "layers": layers, "heads": heads, "vocab": list(g.VOCABULARY),
                       "max_tokens": g.MAX_TOKENS}
        self.set_attention(attention)
        self.token = nn.Embedding(len(g.VOCABULARY) + 2, dim)
        self.position = nn.Parameter(torch.zeros(g.MAX_TOKENS, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token.weight, std=0.5)
        nn.init.normal_(self.position, std=0.1)

    @property
    def device(self) -> torch.device:
        return self.token.weight.device

    def set_attention(self, attention: str) -> None:
        """Switch the attention pattern (e.g. to fine-tune a 'full' encoder as 'clause'); weights are unchanged."""
        if attention not in TEXT_ATTENTION:
            raise ValueError(f"text encoder attention must be one of {TEXT_ATTENTION}, got {attention!r}")
        self.attention = self.config["attention"] = attention

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.attention == "clause":
            seg = clause_ids(token_ids)
            mask = (seg[:, :, None] != seg[:, None, :]).repeat_interleave(self.heads, 0)  # True = blocked
        return self.norm(self.encoder(self.token(token_ids) + self.position, mask=mask))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts (checked against the grammar; PromptError otherwise) -> embeddings. '' is unconditional."""
        ids = torch.tensor(g.tokenize(prompts), dtype=torch.long, device=self.device)
        return self(ids)

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(self.config, indent=1))
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, path / "model.safetensors")

    @classmethod
    def load(cls, path: Path) -> "ShapesTextEncoder":
        from safetensors.torch import load_file

        cfg = json.loads((path / "config.json").read_text())
        if cfg["vocab"] != list(g.VOCABULARY):
            raise ValueError(f"text encoder at {path} was trained on another vocabulary than grammar.VOCABULARY")
        # Encoders saved before the attention option existed attended over the whole prompt.
        enc = cls(cfg["dim"], cfg["layers"], cfg["heads"], cfg.get("attention", "full"))
        enc.load_state_dict(load_file(path / "model.safetensors"))
        return enc


def build_transformer(cfg: ShapesModelConfig):
    """A freshly initialised PixArtTransformer2DModel for 32x32 RGB images in [-1, 1]."""
    from diffusers import PixArtTransformer2DModel

    width = cfg.num_heads * cfg.head_dim
    return PixArtTransformer2DModel(
        num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim, in_channels=3, out_channels=3,
        num_layers=cfg.num_layers, cross_attention_dim=width, sample_size=32, patch_size=cfg.patch_size,
        caption_channels=cfg.text_dim, norm_num_groups=1, use_additional_conditions=False,
    )


def build_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)


def build_models(cfg: ShapesModelConfig):
    """(transformer, text_encoder) freshly initialised."""
    return build_transformer(cfg), ShapesTextEncoder(cfg.text_dim, cfg.text_layers, cfg.text_heads,
                                                     cfg.text_attention)


def save_models(path: Path, cfg: ShapesModelConfig, transformer, text_encoder) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    transformer.save_pretrained(path / "transformer", safe_serialization=True)
    text_encoder.save(path / "text_encoder")
    build_scheduler().save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps(asdict(cfg), indent=1))


def load_models(path: Path = DEFAULT_DIR):
    """(cfg, transformer, text_encoder, scheduler) from a saved folder, offline."""
    from diffusers import FlowMatchEulerDiscreteScheduler, PixArtTransformer2DModel

    path = Path(path)
    if not (path / "model_index.json").exists():
        raise FileNotFoundError(f"no shapes model at {path} (expected model_index.json there)")
    cfg = ShapesModelConfig(**json.loads((path / "model_index.json").read_text()))
    transformer = PixArtTransformer2DModel.from_pretrained(
        path / "transformer", local_files_only=True, low_cpu_mem_usage=False)
    text_encoder = ShapesTextEncoder.load(path / "text_encoder")
    cfg.text_attention = text_encoder.attention  # the encoder's own config.json is the record of how it attends
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(path / "scheduler", local_files_only=True)
    return cfg, transformer, text_encoder, scheduler
