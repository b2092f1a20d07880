"""The segmentation networks of ReCo and U2PL (dilated ResNet + DeepLabV3+ + representation
head), plain PyTorch.

Spec: shared/specs/semisup.md 1(a) "Network" (ReCo), 2(a) "Network" (U2PL), 4.4-4.5 (MMSeg
notes). Both networks map (B, 3, H, W) to a dict of 1/4-resolution outputs; the caller upsamples
the logits to the label size (both originals use bilinear, align_corners=True).

``ResNetBackbone`` (shared)
    stem      torchvision: 7x7/2 conv 3->64, BN, ReLU, 3x3/2 max-pool (floor mode).
              deep (U2PL, "resnet101 with 3 3x3 convs in the stem"): 3x3/2 conv 3->64, BN, ReLU,
              3x3 conv 64->64, BN, ReLU, 3x3 conv 64->128, then BN(128), ReLU, 3x3/2 max-pool
              with ceil_mode=True; layer1 therefore takes 128 channels (and gets a 1x1
              downsample in its first block).
    layers    layer1..4 of torchvision's BasicBlock (depth 18/34) or Bottleneck (50/101).
              output stride 32 / 16 / 8 = no dilation / layer4 dilated 2 / layer3 dilated 2
              and layer4 dilated 4. A dilated layer has stride 1; as in torchvision's
              ``replace_stride_with_dilation`` and in ReCo's ``_nostride_dilate``, the first
              block's strided 3x3 conv (Bottleneck conv2, BasicBlock conv1) keeps the previous
              layer's dilation, every other 3x3 conv gets the layer's dilation.
    multi-grid (U2PL) ``multi_grid=(g_0, g_1, ...)`` multiplies layer4's block dilations: block 0
              gets previous dilation x g_0, block i > 0 gets layer dilation x g_i. U2PL's
              (2, 2, 4) at OS8 gives layer4 dilations (4, 8, 16); layer3 stays (1, 2, 2, ...).
              Only the first #blocks entries are used (ResNet-18 has two blocks in layer4).
    output    (c1, c2, c3, c4); with h1 = the layer1 grid:
                c1 (B, 64e, h1, w1)   e = 1 (BasicBlock) or 4 (Bottleneck)
                c2 (B, 128e, h1/2, w1/2)
                c3 (B, 256e, ..)       1/16 at OS16 and OS32, 1/8 at OS8
                c4 (B, 512e, ..)       1/32, 1/16 or 1/8 (every /2 rounds up)
              h1 = ceil(ceil(H/2)/2) for the torchvision stem (H/4 for H divisible by 4);
              for the deep stem (ceil-mode pool) h1 = floor(ceil(H/2)/2) + 1, e.g. 17 for
              H = 64 and 129 for H = 513: odd crops (513, 769, as U2PL uses) give the same
              grid for both stems.
    init      convs Kaiming-normal (fan_out, ReLU), norms weight 1 / bias 0, like torchvision
              and U2PL; ``zero_init_residual`` zeroes the last norm of every block (U2PL: on).

State-dict keys (``backbone.`` inside the networks):
    torchvision stem: conv1.weight, bn1.*, layer{1..4}.{i}.{conv1,bn1,conv2,bn2[,conv3,bn3]}.*,
      layer{1..4}.0.downsample.{0,1}.* -- exactly torchvision's names without fc, so
      torchvision ImageNet files (resnet50-0676ba61.pth, resnet101-63fe2227.pth, ...) and our
      converted self-supervised checkpoints (tools/convert_checkpoint.py --dst-format
      torchvision, fc optional) load with ``load_backbone_weights``.
    deep stem: the U2PL / UniMatch ``resnet.py`` layout -- conv1.0.weight (3x3 3->64),
      conv1.1.* (BN 64), conv1.3.weight (64->64), conv1.4.* (BN 64), conv1.6.weight (64->128),
      bn1.* (BN 128); layers as above with layer1.0.conv1 / downsample.0 taking 128 channels.
      Fits the deep-stem ImageNet ``resnet101.pth`` that U2PL, CPS, ST++ and UniMatch share
      (U2PL loads it non-strictly, so its exact contents are not verified here;
      ``load_backbone_weights`` checks every key). Also accepted, remapped by
      ``remap_deep_stem_keys``: the conv1/bn1/conv2/bn2/conv3/bn3 stem of CSAIL-style deep-stem
      files, and mmseg ResNetV1c's stem.{0,1,3,4,6,7} -- the latter only with
      ``stem_channels=128`` (the stock open-mmlab resnet*_v1c files are 32-32-64 and are
      refused with a shape-mismatch list). Torchvision-stem checkpoints do not fit it.

``ReCoDeepLabV3Plus`` (spec 1(a); ReCo's ``network/deeplabv3``)
    backbone         torchvision stem, OS16 (default depth 101)
    aspp             [1x1, 3x3 r=6, 12, 18, image pool] each conv(no bias)+BN+ReLU, 256 ch
                     -> concat (B, 1280, h4, w4); rates (12, 24, 36) at OS8
    aspp_project     1x1 1280->256 + BN + ReLU (no dropout)
    low_level_project  c1 -> 1x1 48 + BN + ReLU; ASPP upsampled (bilinear,
                     align_corners=True) to c1's grid; concat [low, aspp] (B, 304, h1, w1)
    classifier       3x3 304->256 + BN + ReLU -> 1x1 -> num_classes
    representation   3x3 304->256 + BN + ReLU -> 1x1 -> rep_dim (256)
    returns          {'logits': (B, num_classes, h1, w1), 'rep': (B, rep_dim, h1, w1)}

``U2PLDeepLabV3Plus`` (spec 2(a); U2PL's ``dec_deeplabv3_plus`` and ``Aux_Module``)
    backbone         deep stem, OS8, multi-grid (2, 2, 4), zero_init_residual (default 101)
    aspp             [image pool, 1x1, 3x3 r=12, 24, 36] each conv(no bias)+BN+ReLU, 256 ch
                     -> concat (B, 1280, h3, w3)
    aspp_project     (U2PL's ``head``) 3x3 1280->256 + BN + ReLU + Dropout2d(0.1)
    low_level_project  (``low_conv``) 1x1 c1->256 with bias + BN + ReLU; ASPP upsampled
                     (bilinear, align_corners=True); concat [low, aspp] (B, 512, h1, w1)
    classifier       2 x [3x3 conv (with bias) -> 256 + BN + ReLU + Dropout2d(0.1)] -> 1x1 -> C
    representation   the same two blocks -> 1x1 -> rep_dim (256)
    aux_head         (``aux=True``; Cityscapes) on c3: 3x3 c3->256 (with bias) + BN + ReLU +
                     Dropout2d(0.1) -> 1x1 -> C
    returns          {'logits': (B, C, h1, w1), 'rep': (B, rep_dim, h1, w1)}
                     + 'aux_logits': (B, C, h3, w3) (1/8 at OS8) when aux is on

The ASPP concatenation order and the conv biases follow each original, so their released
weights map onto these modules by renaming keys only. Heads keep PyTorch's default init, like
both originals. ``norm_layer`` is any callable ``num_features -> module`` (default
``nn.BatchNorm2d``; the plugins pass ``nn.SyncBatchNorm``); it is used everywhere, backbone
included.
"""
import os
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

NormLayer = Callable[[int], nn.Module]

U2PL_MULTI_GRID = (2, 2, 4)
RECO_ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
U2PL_ASPP_RATES = (12, 24, 36)
# output stride -> dilation of layer1..4
STAGE_DILATIONS = {32: (1, 1, 1, 1), 16: (1, 1, 1, 2), 8: (1, 1, 2, 4)}
DEEP_STEM_CHANNELS = (64, 64, 128)


# ----------------------------------------------------------------------------- ResNet blocks
def conv3x3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1
            ) -> nn.Conv2d:
    """3x3 conv without bias, padding = dilation (keeps the grid at stride 1)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=dilation,
                     dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock with dilation: conv1 (3x3, stride, ``first_dilation``) -> norm
    -> ReLU -> conv2 (3x3, ``dilation``) -> norm, + shortcut, ReLU.
    (B, C_in, H, W) -> (B, planes, H/stride, W/stride)."""
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1,
                 first_dilation: Optional[int] = None, downsample: Optional[nn.Module] = None,
                 norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride, first_dilation or dilation)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (stride on the 3x3): 1x1 -> norm -> ReLU -> 3x3 (stride,
    ``first_dilation``) -> norm -> ReLU -> 1x1 (x4) -> norm, + shortcut, ReLU.
    (B, C_in, H, W) -> (B, 4 * planes, H/stride, W/stride). ``dilation`` is unused (one 3x3)."""
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1,
                 first_dilation: Optional[int] = None, downsample: Optional[nn.Module] = None,
                 norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride, first_dilation or dilation)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


RESNET_LAYOUTS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
                  50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNetBackbone(nn.Module):
    """Dilated ResNet returning the four stage features (see the module docstring).

    Args:
        depth: 18, 34 (BasicBlock), 50 or 101 (Bottleneck).
        deep_stem: False = torchvision 7x7 stem (ReCo); True = U2PL's 64-64-128 3x3 stem with a
            ceil-mode max-pool.
        output_stride: 32, 16 (layer4 dilated) or 8 (layer3 and layer4 dilated).
        multi_grid: None, or per-block multipliers of layer4's dilation (U2PL: (2, 2, 4)); at
            least as many entries as layer4 has blocks, extra ones are ignored.
        norm_layer: ``num_features -> module`` for every norm (default BatchNorm2d).
        zero_init_residual: zero the weight of each block's last norm (U2PL: True).

    forward: (B, 3, H, W) -> (c1, c2, c3, c4). Attributes: ``out_channels`` (C1..C4),
    ``dilations`` (layer1..4), ``output_stride``, ``deep_stem``, ``depth``.
    """

    def __init__(self, depth: int = 101, deep_stem: bool = False, output_stride: int = 16,
                 multi_grid: Optional[Sequence[int]] = None,
                 norm_layer: Optional[NormLayer] = None, zero_init_residual: bool = False):
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f'ResNetBackbone: depth={depth} is not one of '
                             f'{sorted(RESNET_LAYOUTS)}')
        if output_stride not in STAGE_DILATIONS:
            raise ValueError(f'ResNetBackbone: output_stride={output_stride} is not one of '
                             f'{sorted(STAGE_DILATIONS)}')
        block, num_blocks = RESNET_LAYOUTS[depth]
        if multi_grid is not None:
            multi_grid = tuple(int(g) for g in multi_grid)
            if len(multi_grid) < num_blocks[3] or any(g < 1 for g in multi_grid):
                raise ValueError(f'ResNetBackbone: multi_grid={list(multi_grid)} needs '
                                 f'{num_blocks[3]} positive entries (layer4 of ResNet-{depth} '
                                 f'has {num_blocks[3]} blocks)')
        norm_layer = norm_layer or nn.BatchNorm2d
        self.depth, self.deep_stem, self.output_stride = depth, deep_stem, output_stride
        self.multi_grid = multi_grid
        self.dilations = STAGE_DILATIONS[output_stride]

        if deep_stem:
            c_a, c_b, stem_channels = DEEP_STEM_CHANNELS
            self.conv1 = nn.Sequential(
                conv3x3(3, c_a, stride=2), norm_layer(c_a), nn.ReLU(inplace=True),
                conv3x3(c_a, c_b), norm_layer(c_b), nn.ReLU(inplace=True),
                conv3x3(c_b, stem_channels))
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        else:
            stem_channels = 64
            self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = norm_layer(stem_channels)
        self.relu = nn.ReLU(inplace=True)

        in_channels, previous_dilation = stem_channels, 1
        out_channels = []
        for index, (planes, blocks, dilation) in enumerate(
                zip((64, 128, 256, 512), num_blocks, self.dilations)):
            stride = 1 if index == 0 or dilation > 1 else 2
            grid = multi_grid if index == 3 and multi_grid is not None else (1,) * blocks
            layer = self._make_layer(block, in_channels, planes, blocks, stride, dilation,
                                     previous_dilation, grid, norm_layer)
            self.add_module(f'layer{index + 1}', layer)
            in_channels, previous_dilation = planes * block.expansion, dilation
            out_channels.append(in_channels)
        self.out_channels = tuple(out_channels)
        self._init_weights(zero_init_residual)

    @staticmethod
    def _make_layer(block, in_channels, planes, blocks, stride, dilation, previous_dilation,
                    grid, norm_layer) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                norm_layer(out_channels))
        layers = [block(in_channels, planes, stride, dilation=dilation * grid[0],
                        first_dilation=previous_dilation * grid[0], downsample=downsample,
                        norm_layer=norm_layer)]
        layers += [block(out_channels, planes, 1, dilation=dilation * grid[i],
                         first_dilation=dilation * grid[i], norm_layer=norm_layer)
                   for i in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif _is_norm(m) and getattr(m, 'weight', None) is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_norm().weight)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4


def _is_norm(m: nn.Module) -> bool:
    return isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))


# ----------------------------------------------------------------------------- weights
# deep-stem layouts of other code bases -> ours (top-level keys only)
_CSAIL_STEM = {'conv1': 'conv1.0', 'bn1': 'conv1.1', 'conv2': 'conv1.3', 'bn2': 'conv1.4',
               'conv3': 'conv1.6', 'bn3': 'bn1'}
_MMSEG_STEM = {'stem.0': 'conv1.0', 'stem.1': 'conv1.1', 'stem.3': 'conv1.3',
               'stem.4': 'conv1.4', 'stem.6': 'conv1.6', 'stem.7': 'bn1'}


def remap_deep_stem_keys(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A deep-stem state dict in our (U2PL) layout. Recognised: ours (conv1.0 ... bn1, returned
    unchanged), CSAIL-style separate modules (conv1, bn1, conv2, bn2, conv3, bn3 at top level)
    and mmseg ResNetV1c (stem.0, .1, .3, .4, .6, .7). Block keys (layer*) never change."""
    keys = set(state_dict)
    if any(k.startswith('stem.') for k in keys):
        table = _MMSEG_STEM
    elif 'conv3.weight' in keys and 'conv2.weight' in keys:
        table = _CSAIL_STEM
    else:
        return dict(state_dict)
    out = {}
    for key, value in state_dict.items():
        module, dot, rest = key.rpartition('.')
        out[f'{table.get(module, module)}{dot}{rest}'] = value
    return out


def load_backbone_weights(backbone: ResNetBackbone,
                          checkpoint: Union[str, os.PathLike, Mapping[str, torch.Tensor]],
                          where: str = 'backbone') -> None:
    """Load a ResNet checkpoint into ``backbone``, checking every key and shape.

    ``checkpoint``: a path (``torch.load(weights_only=True)``) or a state dict; a dict under
    ``state_dict`` / ``model`` is unwrapped, a ``module.`` or ``backbone.`` prefix common to
    all keys stripped, ``fc.*`` dropped, and deep-stem layouts remapped
    (``remap_deep_stem_keys``). Raises ``ValueError`` listing missing, unexpected and
    shape-mismatched keys; nothing is loaded then.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        name = os.fspath(checkpoint)
        checkpoint = torch.load(name, map_location='cpu', weights_only=True)
        where = f'{where} ({name})'
    for wrapper in ('state_dict', 'model'):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
            break
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'{where}: expected a state dict, got {type(checkpoint).__name__}')
    state_dict = dict(checkpoint)
    for prefix in ('module.', 'backbone.'):
        if state_dict and all(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items()}
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith('fc.')}
    if backbone.deep_stem:
        state_dict = remap_deep_stem_keys(state_dict)
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f'{k} {tuple(getattr(state_dict[k], "shape", ()))} vs {tuple(expected[k].shape)}'
        for k in set(expected) & set(state_dict)
        if not isinstance(state_dict[k], torch.Tensor) or state_dict[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        def show(items):
            return ', '.join(items[:6]) + (f' ... ({len(items)} in all)' if len(items) > 6 else '')
        stem = 'deep-stem (U2PL)' if backbone.deep_stem else 'torchvision-stem'
        raise ValueError(f'{where}: checkpoint does not fit a {stem} ResNet-{backbone.depth}: '
                         f'{len(missing)} missing [{show(missing)}], {len(unexpected)} '
                         f'unexpected [{show(unexpected)}], {len(mismatched)} shape '
                         f'mismatches [{show(mismatched)}]')
    backbone.load_state_dict(state_dict, strict=True)


# ----------------------------------------------------------------------------- heads
class ConvBNReLU(nn.Module):
    """conv -> norm -> ReLU [-> Dropout2d]; (B, C_in, H, W) -> (B, C_out, H, W).
    Keys: conv.weight [conv.bias], bn.*."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 dilation: int = 1, bias: bool = False, dropout: float = 0.0,
                 norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        padding = dilation * (kernel_size // 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                              dilation=dilation, bias=bias)
        self.bn = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        return self.dropout(self.relu(self.bn(self.conv(x))))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling WITHOUT its fusion conv (each network adds its own):
    branches image pool (global mean -> 1x1 -> norm -> ReLU -> broadcast), 1x1, and one 3x3
    per rate, each conv (no bias) -> norm -> ReLU with ``channels`` outputs.
    (B, C_in, h, w) -> (B, (len(rates) + 2) * channels, h, w), concatenated as
    [pool, 1x1, rates...] if ``image_pool_first`` (U2PL) else [1x1, rates..., pool] (ReCo).
    (Both originals upsample the 1x1 pooled map bilinearly, which is a broadcast.)"""

    def __init__(self, in_channels: int, channels: int, rates: Sequence[int],
                 image_pool_first: bool, norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        self.image_pool_first = image_pool_first
        self.image_pool = ConvBNReLU(in_channels, channels, 1, norm_layer=norm_layer)
        self.conv1x1 = ConvBNReLU(in_channels, channels, 1, norm_layer=norm_layer)
        self.dilated = nn.ModuleList([ConvBNReLU(in_channels, channels, 3, dilation=r,
                                                 norm_layer=norm_layer) for r in rates])
        self.out_channels = (len(rates) + 2) * channels

    def forward(self, x):
        pooled = self.image_pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *x.shape[2:])
        branches = [self.conv1x1(x)] + [conv(x) for conv in self.dilated]
        branches = [pooled] + branches if self.image_pool_first else branches + [pooled]
        return torch.cat(branches, dim=1)


class ConvHead(nn.Module):
    """``len(hidden)`` ConvBNReLU 3x3 blocks then a 1x1 conv with bias:
    (B, C_in, H, W) -> (B, out_channels, H, W). Keys: blocks.{i}.{conv,bn}.*, proj.*"""

    def __init__(self, in_channels: int, hidden: Sequence[int], out_channels: int,
                 bias: bool = False, dropout: float = 0.0,
                 norm_layer: NormLayer = nn.BatchNorm2d):
        super().__init__()
        blocks = []
        for width in hidden:
            blocks.append(ConvBNReLU(in_channels, width, 3, bias=bias, dropout=dropout,
                                     norm_layer=norm_layer))
            in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x):
        return self.proj(self.blocks(x))


def _fuse_low_level(aspp_feature: torch.Tensor, low_feature: torch.Tensor) -> torch.Tensor:
    """concat [low, bilinear(aspp, low's grid, align_corners=True)] on channels."""
    aspp_feature = F.interpolate(aspp_feature, size=low_feature.shape[2:], mode='bilinear',
                                 align_corners=True)
    return torch.cat([low_feature, aspp_feature], dim=1)


# ----------------------------------------------------------------------------- networks
class ReCoDeepLabV3Plus(nn.Module):
    """ReCo's DeepLabV3+ with its representation head (spec 1(a) "Network").

    (B, 3, H, W) -> {'logits': (B, num_classes, h1, w1), 'rep': (B, rep_dim, h1, w1)}, h1 the
    layer1 grid (H/4 for H divisible by 4). The decoder feature both heads read is
    [48-ch low level ; 256-ch ASPP] = 304 channels, for any depth.

    Args:
        num_classes: classifier outputs.
        depth: ResNet depth (ReCo: 101; 18/50 for tests and CPU demos).
        output_stride: 16 (ReCo) or 8.
        aspp_rates: three ASPP rates; None = (6, 12, 18) at OS16, (12, 24, 36) at OS8.
        rep_dim: representation channels (ReCo's ``output_dim``, 256).
        deep_stem: False (ReCo uses torchvision's ResNet).
        norm_layer: ``num_features -> module`` (default BatchNorm2d; ReCo has no SyncBN).
    """

    def __init__(self, num_classes: int, depth: int = 101, output_stride: int = 16,
                 aspp_rates: Optional[Sequence[int]] = None, rep_dim: int = 256,
                 deep_stem: bool = False, norm_layer: Optional[NormLayer] = None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if aspp_rates is None:
            if output_stride not in RECO_ASPP_RATES:
                raise ValueError(f'ReCoDeepLabV3Plus: no default ASPP rates for '
                                 f'output_stride={output_stride}; give aspp_rates')
            aspp_rates = RECO_ASPP_RATES[output_stride]
        self.num_classes, self.rep_dim = num_classes, rep_dim
        self.backbone = ResNetBackbone(depth, deep_stem=deep_stem, output_stride=output_stride,
                                       norm_layer=norm_layer)
        c1, _, _, c4 = self.backbone.out_channels
        self.aspp = ASPP(c4, 256, aspp_rates, image_pool_first=False, norm_layer=norm_layer)
        self.aspp_project = ConvBNReLU(self.aspp.out_channels, 256, 1, norm_layer=norm_layer)
        self.low_level_project = ConvBNReLU(c1, 48, 1, norm_layer=norm_layer)
        self.classifier = ConvHead(304, [256], num_classes, norm_layer=norm_layer)
        self.representation = ConvHead(304, [256], rep_dim, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        c1, _, _, c4 = self.backbone(x)
        feature = _fuse_low_level(self.aspp_project(self.aspp(c4)), self.low_level_project(c1))
        return {'logits': self.classifier(feature), 'rep': self.representation(feature)}


class U2PLDeepLabV3Plus(nn.Module):
    """U2PL's DeepLabV3+ with its representation head and optional aux head (spec 2(a)).

    (B, 3, H, W) -> {'logits': (B, C, h1, w1), 'rep': (B, rep_dim, h1, w1)} and, when ``aux``,
    'aux_logits': (B, C, h3, w3) from layer3 (1/8 at OS8). The decoder feature is
    [256-ch low level ; 256-ch ASPP head] = 512 channels, for any depth.

    Args:
        num_classes: classifier outputs (21 Pascal, 19 Cityscapes).
        depth: ResNet depth (U2PL: 101; 18/50 for tests and CPU demos).
        output_stride: 8 (U2PL) or 16.
        multi_grid: layer4 dilation multipliers (U2PL: (2, 2, 4)); None = off.
        aspp_rates: three ASPP rates (U2PL: (12, 24, 36)).
        rep_dim: representation channels (256).
        aux: add the layer3 aux head (U2PL's Cityscapes configs; loss weight 0.4 is the
            caller's).
        dropout: Dropout2d rate of every head block (0.1).
        deep_stem: True (U2PL's 64-64-128 stem).
        zero_init_residual: True as U2PL's configs.
        norm_layer: ``num_features -> module`` (default BatchNorm2d; U2PL trains with SyncBN).
    """

    def __init__(self, num_classes: int, depth: int = 101, output_stride: int = 8,
                 multi_grid: Optional[Sequence[int]] = U2PL_MULTI_GRID,
                 aspp_rates: Sequence[int] = U2PL_ASPP_RATES, rep_dim: int = 256,
                 aux: bool = False, dropout: float = 0.1, deep_stem: bool = True,
                 zero_init_residual: bool = True, norm_layer: Optional[NormLayer] = None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        self.num_classes, self.rep_dim, self.aux = num_classes, rep_dim, aux
        self.backbone = ResNetBackbone(depth, deep_stem=deep_stem, output_stride=output_stride,
                                       multi_grid=multi_grid, norm_layer=norm_layer,
                                       zero_init_residual=zero_init_residual)
        c1, _, c3, c4 = self.backbone.out_channels
        self.low_level_project = ConvBNReLU(c1, 256, 1, bias=True, norm_layer=norm_layer)
        self.aspp = ASPP(c4, 256, aspp_rates, image_pool_first=True, norm_layer=norm_layer)
        self.aspp_project = ConvBNReLU(self.aspp.out_channels, 256, 3, dropout=dropout,
                                       norm_layer=norm_layer)
        head = dict(bias=True, dropout=dropout, norm_layer=norm_layer)
        self.classifier = ConvHead(512, [256, 256], num_classes, **head)
        self.representation = ConvHead(512, [256, 256], rep_dim, **head)
        self.aux_head = ConvHead(c3, [256], num_classes, **head) if aux else None

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        c1, _, c3, c4 = self.backbone(x)
        feature = _fuse_low_level(self.aspp_project(self.aspp(c4)), self.low_level_project(c1))
        out = {'logits': self.classifier(feature), 'rep': self.representation(feature)}
        if self.aux_head is not None:
            out['aux_logits'] = self.aux_head(c3)
        return out
