"""The task heads of the benchmark (trained on a frozen encoder's outputs), sized from the
encoder's ``channels`` (``virb.encoders``): any ResNet, or a custom encoder.

Every head has ``required_encodings`` (the encoder outputs it reads) and
``forward(features: dict) -> prediction``.

- ``LinearHead``: Linear(C_emb, K) on ``embedding`` (B, C_emb) -> (B, K). Image-level tasks.
- ``MultiEmbeddingHead``: N frame embeddings (B, N, C_emb) concatenated -> Linear(N*C_emb,
  512) -> ReLU -> Linear(512, K) -> (B, K). Multi-frame tasks (egomotion, actions).
- ``PixelShuffleDecoder`` (the original's PixelWisePredictionHead): top-down from block4;
  stage i = conv3x3(C_in -> 4*C_out) -> PixelShuffle(2) -> LeakyReLU, then bilinear resize to
  the skip's size and add the skip (block3, block2, block1, conv); a last conv3x3(C ->
  4*K) + PixelShuffle(2) gives (B, K, H, W) at input resolution (the stem is at H/2).
- ``DeepLabHead``: a TRAINABLE copy of the encoder's layer4 made stride 1 / dilation 2 (BN
  kept in eval mode), applied to block3 (B, C3, H/16, W/16); ASPP (1x1, 3x3 at rates 6 / 12
  / 18, image pooling; 256 ch); block1 reduced to 48 ch and concatenated with the upsampled
  ASPP output; 2 x (conv3x3 256 + BN + ReLU); conv1x1 -> K; bilinear to input size.
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn


class LinearHead(nn.Module):
    required_encodings = ('embedding',)

    def __init__(self, channels, num_outputs):
        super().__init__()
        self.fc = nn.Linear(channels['embedding'], num_outputs)

    def forward(self, features):
        return self.fc(features['embedding'].float())


class MultiEmbeddingHead(nn.Module):
    required_encodings = ('embedding',)

    def __init__(self, channels, num_outputs, num_frames, hidden=512):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(channels['embedding'] * num_frames, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, num_outputs))

    def forward(self, features):
        emb = features['embedding'].float()  # (B, N, C)
        return self.mlp(emb.flatten(1))


def _up_stage(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, 4 * c_out, 3, padding=1), nn.PixelShuffle(2),
                         nn.LeakyReLU(inplace=True))


class PixelShuffleDecoder(nn.Module):
    required_encodings = ('conv', 'block1', 'block2', 'block3', 'block4')
    SKIPS = ('block3', 'block2', 'block1', 'conv')

    def __init__(self, channels, num_outputs):
        super().__init__()
        widths = [channels['block4']] + [channels[k] for k in self.SKIPS]
        self.stages = nn.ModuleList(_up_stage(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Sequential(nn.Conv2d(widths[-1], 4 * num_outputs, 3, padding=1),
                                 nn.PixelShuffle(2))

    def forward(self, features):
        x = features['block4'].float()
        for stage, skip in zip(self.stages, self.SKIPS):
            s = features[skip].float()
            x = F.interpolate(stage(x), size=s.shape[-2:], mode='bilinear',
                              align_corners=False) + s
        return self.out(x)


def dilated_copy(layer, dilation=2):
    """A deep copy of a ResNet stage with every stride 1 and its 3x3 convs dilated (the
    output keeps the input's resolution; works for basic and bottleneck blocks)."""
    layer = copy.deepcopy(layer)
    for module in layer.modules():
        if isinstance(module, nn.Conv2d):
            module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation, module.padding = (dilation, dilation), (dilation, dilation)
    for p in layer.parameters():
        p.requires_grad_(True)
    return layer


class _ASPP(nn.Module):
    def __init__(self, c_in, c_out=256, rates=(6, 12, 18)):
        super().__init__()

        def branch(k, r):
            return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=0 if k == 1 else r,
                                           dilation=r, bias=False),
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        self.branches = nn.ModuleList([branch(1, 1)] + [branch(3, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1, bias=False),
                                  nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(c_out * (len(rates) + 2), c_out, 1, bias=False),
                                     nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    def forward(self, x):
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class DeepLabHead(nn.Module):
    required_encodings = ('block1', 'block3')

    def __init__(self, channels, num_outputs, layer4=None, width=256):
        super().__init__()
        self.layer4 = dilated_copy(layer4) if layer4 is not None else None
        c4 = channels['block4'] if layer4 is not None else channels['block3']
        self.aspp = _ASPP(c4, width)
        self.reduce = nn.Sequential(nn.Conv2d(channels['block1'], 48, 1, bias=False),
                                    nn.BatchNorm2d(48), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(
            nn.Conv2d(width + 48, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(width, num_outputs, 1)

    def train(self, mode=True):
        super().train(mode)
        if self.layer4 is not None:  # the copied layer4 keeps its BN statistics
            for m in self.layer4.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, features, output_size=None):
        x = features['block3'].float()
        if self.layer4 is not None:
            x = self.layer4(x)
        x = self.aspp(x)
        low = self.reduce(features['block1'].float())
        x = F.interpolate(x, size=low.shape[-2:], mode='bilinear', align_corners=False)
        x = self.classifier(self.fuse(torch.cat([x, low], 1)))
        size = output_size or tuple(s * 4 for s in low.shape[-2:])
        return F.interpolate(x, size=size, mode='bilinear', align_corners=False)


HEADS = {'linear': LinearHead, 'multi_embedding': MultiEmbeddingHead,
         'pixel_shuffle': PixelShuffleDecoder, 'deeplab': DeepLabHead}


def build_head(kind, channels, num_outputs, encoder=None, **options):
    """A head of ``HEADS`` for an encoder with ``channels``; ``deeplab`` copies the encoder's
    ``layer4`` (``encoder.model.layer4`` of a ``ResNetEncoder``; a custom encoder without one
    gets the head on block3 directly)."""
    if kind == 'deeplab':
        layer4 = getattr(getattr(encoder, 'model', None), 'layer4', None)
        return DeepLabHead(channels, num_outputs, layer4=layer4, **options)
    return HEADS[kind](channels, num_outputs, **options)
