"""Image GPT: a GPT over the raster sequence of an image's pixels, each pixel a token.

Colours are quantised to a small palette (here: binarised digits, two tokens; the paper clusters
RGB into 512 colours with k-means), the image is flattened in raster order, and a decoder-only
Transformer with no 2-D prior is trained to predict the next pixel. A start token lets the first
pixel be predicted too. Sampling, like every autoregressive model, takes one pass per pixel.

    L_{AR} = \\mathbb{E}_{x \\sim X}\\Big[-\\sum_{i=1}^{n} \\log p(x_{\\pi_i} \\mid x_{\\pi_1}, \\dots,
        x_{\\pi_{i-1}}; \\theta)\\Big]

Chen, Radford, Child, Wu, Jun, Luan & Sutskever, "Generative Pretraining from Pixels", ICML 2020.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.sequence.gpt import GPT


class ImageGPT(nn.Module):
    """Pixels as tokens: x (B, H, W) or (B, D) integer colours in [0, n_colors) -> logits (B, D, n_colors),
    the logits at i for pixel i given pixels < i in raster order."""

    def __init__(self, n_colors: int = 2, n_pixels: int = 196, n_layer: int = 2, n_head: int = 4, n_embd: int = 64):
        super().__init__()
        if n_colors < 2:
            raise ValueError(f"an image needs at least 2 colours, got {n_colors}")
        self.n_colors, self.n_pixels = n_colors, n_pixels
        self.sos = n_colors  # the start-of-image token
        self.gpt = GPT(n_colors + 1, n_pixels, n_layer, n_head, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, D) raster order
        if x.shape[1] != self.n_pixels:
            raise ValueError(f"expected {self.n_pixels} pixels, got {x.shape[1]}")
        inp = torch.cat([torch.full_like(x[:, :1], self.sos), x[:, :-1]], 1)  # (B, D): [SOS, x_1 .. x_{D-1}]
        return self.gpt(inp)[..., :self.n_colors]  # (B, D, n_colors); the start token is never predicted

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-\\log p(x) per image in nats, averaged over the batch."""
        logits = self(x)
        return F.cross_entropy(logits.flatten(0, 1), x.flatten(), reduction="sum") / len(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
        """n images drawn pixel by pixel: (n, D) colours."""
        device = self.gpt.wte.weight.device
        seq = torch.full((n, 1), self.sos, dtype=torch.long, device=device)
        for _ in range(self.n_pixels):
            logits = self.gpt(seq)[:, -1, :self.n_colors] / temperature  # (n, n_colors)
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=generator).to(device)
            seq = torch.cat([seq, nxt], 1)
        return seq[:, 1:]


@register_model("imagegpt_binary", card="imagegpt", example=lambda: (torch.randint(0, 2, (2, 14, 14)),))
def imagegpt_binary(**kw) -> ImageGPT:
    return ImageGPT(**kw)
