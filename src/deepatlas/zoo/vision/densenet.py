"""DenseNet: every layer of a block sees the concatenated feature maps of all the layers before it.

Where ResNet adds a block's input to its output, DenseNet concatenates: layer l receives
[x_0, x_1, ..., x_{l-1}] and contributes only k new channels (the growth rate), so layers can be
narrow and features are reused rather than relearned. A 1x1 bottleneck in front of each 3x3
convolution and transitions that halve the channels between blocks (DenseNet-BC) keep the count
small; the paper matches ResNet's accuracy with far fewer parameters.

    x_\\ell = H_\\ell([x_0, x_1, \\dots, x_{\\ell-1}]),   H_\\ell: BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k)

Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks", CVPR 2017
(arXiv 1608.06993).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepatlas.registry import register_model
from deepatlas.zoo.vision.resnet import he_init_


class DenseLayer(nn.Module):
    """H_l of DenseNet-BC: BN-ReLU-Conv1x1 to 4k channels, BN-ReLU-Conv3x3 to k channels (pre-activation)."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(4 * growth), nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, k, H, W)
        h = self.conv1(F.relu(self.bn1(x)))  # (B, 4k, H, W): the bottleneck
        return self.conv2(F.relu(self.bn2(h)))


class DenseBlock(nn.Module):
    """`n_layers` dense layers; the output is the input with every layer's k new channels appended."""

    def __init__(self, n_layers: int, c_in: int, growth: int):
        super().__init__()
        # C_\ell = k_0 + k (\ell - 1): layer \ell sees the block input and the \ell - 1 earlier outputs
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth) for i in range(n_layers))
        self.c_out = c_in + n_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, k_0, H, W) -> (B, k_0 + n k, H, W)
        features = [x]
        for layer in self.layers:
            # x_\ell = H_\ell([x_0, x_1, \dots, x_{\ell-1}])
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class Transition(nn.Module):
    """Between blocks: BN-ReLU-Conv1x1 to fewer channels (compression), then 2x2 average pooling."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H / 2, W / 2)
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2, ceil_mode=True)


class DenseNet(nn.Module):
    """DenseNet-BC for small images: a 3x3 stem of 2k channels and 2x2 pooling (the ImageNet nets' stem
    also halves the map; on 28x28 digits it keeps the first block cheap), dense blocks joined by
    transitions that keep a fraction `compression` of the channels, then BN-ReLU, global average pooling
    and a classifier."""

    def __init__(self, blocks: tuple[int, ...] = (4, 4, 4), growth: int = 12, compression: float = 0.5,
                 in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        if not blocks or min(blocks) < 1 or growth < 1:
            raise ValueError(f"need at least one block of positive size and growth >= 1, got {blocks}, {growth}")
        if not 0 < compression <= 1:
            raise ValueError(f"compression is the fraction of channels a transition keeps, in (0, 1]: {compression}")
        self.growth = growth
        c = 2 * growth
        self.stem = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        stages = []
        for i, n in enumerate(blocks):
            block = DenseBlock(n, c, growth)
            stages.append(block)
            c = block.c_out
            if i < len(blocks) - 1:
                stages.append(Transition(c, int(compression * c)))
                c = int(compression * c)
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, classes)
        h = F.max_pool2d(self.stem(x), 2)  # (B, 2k, H / 2, W / 2)
        h = F.relu(self.bn(self.features(h)))  # (B, C, H / 8, W / 8)
        return self.fc(h.mean((2, 3)))

    def extra_repr(self) -> str:
        return f"growth={self.growth}"


@register_model("densenet_small", card="densenet", example=lambda: (torch.randn(2, 1, 28, 28),))
def densenet_small(**kw) -> DenseNet:
    return DenseNet(**kw)
