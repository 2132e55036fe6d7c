"""ResNeXt: a residual bottleneck whose 3x3 convolution is split into C parallel low-width paths.

Inception splits, transforms and merges with hand-designed branches; ResNeXt does it with C identical
paths - the cardinality - each a 1x1 reduction to d channels, a 3x3 convolution and a 1x1 expansion,
summed and added to the shortcut. Summing C paths is the same as concatenating their 3x3 outputs and
expanding once, and that is one grouped convolution with C groups: a ResNet bottleneck with groups.
At equal parameters and compute, a larger cardinality beat a deeper or wider ResNet on ImageNet.

    y = x + \\sum_{i=1}^{C} \\mathcal{T}_i(x),
    \\mathcal{T}_i(x) = W^{(i)}_{e} * \\mathrm{ReLU}(W^{(i)}_{3\\times3} * \\mathrm{ReLU}(W^{(i)}_{r} * x))

Xie, Girshick, Dollár, Tu & He, "Aggregated Residual Transformations for Deep Neural Networks",
CVPR 2017 (arXiv 1611.05431).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.vision.resnet import Bottleneck, conv3x3, he_init_


class ResNeXt(nn.Module):
    """A 3x3 stem, three stages of grouped bottlenecks, global average pooling and a linear classifier.

    Stage s has inner width C * d * 2^s (cardinality C paths of d channels, doubling per stage, as in
    the paper's template) and output width `widths[s]`; the first block of stages 2 and 3 halves the map.
    """

    def __init__(self, blocks: tuple[int, ...] = (1, 1, 1), widths: tuple[int, ...] = (32, 64, 128),
                 cardinality: int = 8, group_width: int = 2, stem: int = 16, in_channels: int = 1,
                 num_classes: int = 10):
        super().__init__()
        if len(blocks) != len(widths) or min(blocks) < 1:
            raise ValueError(f"need one positive block count per stage width, got blocks={blocks}, widths={widths}")
        if cardinality < 1 or group_width < 1:
            raise ValueError(f"cardinality and group width must be positive, got {cardinality} and {group_width}")
        self.cardinality, self.group_width = cardinality, group_width
        self.stem = nn.Sequential(conv3x3(in_channels, stem), nn.BatchNorm2d(stem), nn.ReLU())
        layers, c = [], stem
        for s, (n, width) in enumerate(zip(blocks, widths)):
            inner = cardinality * group_width * 2 ** s
            for i in range(n):
                layers.append(Bottleneck(c, inner, width, stride=2 if s > 0 and i == 0 else 1, groups=cardinality))
                c = width
        self.blocks = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, classes)
        h = self.blocks(self.stem(x))  # (B, widths[-1], H / 4, W / 4)
        return self.fc(h.mean((2, 3)))

    def extra_repr(self) -> str:
        return f"cardinality={self.cardinality}, group_width={self.group_width}"


@register_model("resnext_small", card="resnext", example=lambda: (torch.randn(2, 1, 28, 28),))
def resnext_small(**kw) -> ResNeXt:
    return ResNeXt(**kw)
