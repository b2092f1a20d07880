"""ViCE's DeepLabV3+ network (dilated torchvision ResNet + ASPP + decoder), plain PyTorch.

Registered for VISSL as trunk ``deeplabv3plus`` by ``vissl_plugins/vice/deeplabv3plus.py``; built
frozen for MMSeg by ``mmseg_plugins/vice/vice_backbone.py`` (``ViCEBackbone``).

Spec: shared/specs/pretrain.md 1(a) B. Input (N, 3, H, W) -> output (N, OUT_FEAT_DIM, H, W):
the 128-d dense embedding at input resolution (before the head's L2 normalisation).

    backbone  torchvision ResNet; output stride 8: layer3 stride 1 / dilation 2, layer4 stride 1 /
              dilation 4 (OS 16: layer4 only, dilation 2). Every 3x3 conv of a dilated layer gets
              the layer's full dilation, in every block (both convs of a BasicBlock, conv2 of a
              Bottleneck), as in the original code; (N, C5, H/8, W/8), C5 = 2048 (depth 50/101) or
              512 (18/34); layer1 (N, C2, H/4, W/4), C2 = 256 or 64
    aspp      branch 0: 1x1 conv + BN + ReLU; branches 1..: depthwise-separable 3x3 with dilation
              r (conv -> ReLU -> BN, twice: depthwise then pointwise); image pool: global average
              -> 1x1 conv + BN + ReLU -> broadcast; concat [branches..., pool] (N, (R+1)*D, ..)
              -> 3x3 conv + BN, NO ReLU -> (N, D, H/8, W/8), D = DECODER_CHANNELS (256)
    decoder   skip: layer1 -> 1x1 conv 48 + BN + ReLU; ASPP output bilinearly upsampled to H/4
              (align_corners=True); concat [skip, aspp] (N, 48 + D, H/4, W/4) -> 2 depthwise-
              separable 3x3 convs (D) -> 1x1 conv with bias to OUT_FEAT_DIM
    output    bilinear upsample (align_corners=True) to (H, W)

Rates default to (1, 12, 24, 36) for output stride 8 and (1, 6, 12, 18) for 16; the first rate
must be 1 (it is the 1x1 branch).

Initialisation: ASPP and decoder convs Kaiming-normal (fan_in, ReLU gain), BatchNorm weight 1 and
bias 1e-4, as in ViCE. With ``PRETRAINED_PATH: ''`` (the default, a pure self-supervised run)
the ResNet keeps torchvision's random init except the stem (conv1, bn1), which gets the same
custom init (ViCE rebuilds its stem when not pretrained). ViCE's published runs instead start
from ImageNet-*supervised* torchvision weights (``PRETRAINED: True`` in its configs); to match
them set ``PRETRAINED_PATH`` to a local torchvision ResNet checkpoint (e.g.
``resnet50-0676ba61.pth``): every backbone key and shape is checked, ``fc.*`` is ignored.

Config (``MODEL.TRUNK``, every key optional)::

    NAME: deeplabv3plus
    DEEPLABV3PLUS: {DEPTH: 50, OUTPUT_STRIDE: 8, ASPP_RATES: [1, 12, 24, 36],
                    DECODER_CHANNELS: 256, OUT_FEAT_DIM: 128, PRETRAINED_PATH: ''}

State-dict layout (VISSL saves ``trunk.state_dict()`` at
``checkpoint['classy_state_dict']['base_model']['model']['trunk']``; its weight-init code
expects trunk keys to start with ``_feature_blocks.``)::

    _feature_blocks.backbone.{conv1,bn1,layer1..4.*}         torchvision ResNet names (no fc)
    _feature_blocks.aspp.branches.0.{conv,bn}.*               1x1 branch
    _feature_blocks.aspp.branches.{1..R-1}.{depthwise_conv,depthwise_bn,pointwise_conv,pointwise_bn}.*
    _feature_blocks.aspp.image_pool.{conv,bn}.*
    _feature_blocks.aspp.{fuse_conv,fuse_bn}.*
    _feature_blocks.decoder.{skip_conv,skip_bn}.*
    _feature_blocks.decoder.fuse.{0,1}.{depthwise_conv,depthwise_bn,pointwise_conv,pointwise_bn}.*
    _feature_blocks.decoder.projection.{weight,bias}          1x1 conv D -> OUT_FEAT_DIM

``out_feat_keys`` (VISSL feature extraction): ``out`` (default), ``res2`` (layer1), ``res5``
(layer4), ``aspp`` (ASPP output); a list with one tensor per key, in the order asked.
"""
import os.path as osp
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models as tv_models

RESNETS = {18: tv_models.resnet18, 34: tv_models.resnet34, 50: tv_models.resnet50,
           101: tv_models.resnet101}
DEFAULT_RATES = {8: (1, 12, 24, 36), 16: (1, 6, 12, 18)}
# output stride -> {layer: dilation of every 3x3 conv (stride 1)}
DILATED_LAYERS = {8: {'layer3': 2, 'layer4': 4}, 16: {'layer4': 2}}
SKIP_CHANNELS = 48
FEATURE_KEYS = ('out', 'res2', 'res5', 'aspp')
DEFAULTS = {'DEPTH': 50, 'OUTPUT_STRIDE': 8, 'ASPP_RATES': None, 'DECODER_CHANNELS': 256,
            'OUT_FEAT_DIM': 128, 'PRETRAINED_PATH': ''}


class PretrainedWeightsError(RuntimeError):
    """A PRETRAINED_PATH file that does not fit the configured ResNet."""


def init_vice_weights(module: nn.Module):
    """ViCE's init: Kaiming-normal convs (fan_in, ReLU), BatchNorm weight 1 and bias 1e-4."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.constant_(m.bias, 1e-4)


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BN -> ReLU; (N, C_in, H, W) -> (N, C_out, H', W')."""

    def __init__(self, in_channels, out_channels, kernel_size=1, dilation=1):
        super().__init__()
        padding = 0 if kernel_size == 1 else dilation
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding,
                              dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SeparableConv(nn.Module):
    """ViCE's depthwise-separable 3x3 conv, activation BEFORE normalisation:
    depthwise conv -> ReLU -> BN -> pointwise 1x1 conv -> ReLU -> BN.
    (N, C_in, H, W) -> (N, C_out, H, W)."""

    def __init__(self, in_channels, out_channels, dilation=1):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(in_channels, in_channels, 3, padding=dilation,
                                        dilation=dilation, groups=in_channels, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(in_channels)
        self.pointwise_conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pointwise_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        x = self.depthwise_bn(F.relu(self.depthwise_conv(x)))
        return self.pointwise_bn(F.relu(self.pointwise_conv(x)))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: (N, C5, h, w) -> (N, D, h, w), no ReLU at the end."""

    def __init__(self, in_channels, channels, rates):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBNReLU(in_channels, channels, 1)]
            + [SeparableConv(in_channels, channels, dilation=r) for r in rates[1:]])
        self.image_pool = ConvBNReLU(in_channels, channels, 1)
        self.fuse_conv = nn.Conv2d((len(rates) + 1) * channels, channels, 3, padding=1,
                                   bias=False)
        self.fuse_bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        # bilinear upsampling of a 1x1 map (align_corners=True) is a broadcast
        pooled = self.image_pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, *x.shape[2:])
        outs = [branch(x) for branch in self.branches] + [pooled]
        return self.fuse_bn(self.fuse_conv(torch.cat(outs, dim=1)))


class Decoder(nn.Module):
    """(ASPP (N, D, h, w), layer1 (N, C2, 2h, 2w)) -> (N, out_dim, 2h, 2w)."""

    def __init__(self, skip_in_channels, channels, out_dim):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_in_channels, SKIP_CHANNELS, 1, bias=False)
        self.skip_bn = nn.BatchNorm2d(SKIP_CHANNELS)
        self.fuse = nn.Sequential(SeparableConv(SKIP_CHANNELS + channels, channels),
                                  SeparableConv(channels, channels))
        self.projection = nn.Conv2d(channels, out_dim, 1)

    def forward(self, x, skip):
        skip = F.relu(self.skip_bn(self.skip_conv(skip)))
        x = F.interpolate(x, size=skip.shape[2:], mode='bilinear', align_corners=True)
        return self.projection(self.fuse(torch.cat([skip, x], dim=1)))


class DilatedResNet(nn.Module):
    """torchvision ResNet without avgpool / fc, with dilated layers.
    (N, 3, H, W) -> (layer4 (N, C5, H/os, W/os), layer1 (N, C2, H/4, W/4))."""

    def __init__(self, depth, output_stride):
        super().__init__()
        net = RESNETS[depth](weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (net.layer1, net.layer2, net.layer3,
                                                              net.layer4)
        for name, dilation in DILATED_LAYERS[output_stride].items():
            dilate_layer(getattr(self, name), dilation)
        self.skip_channels = net.layer1[-1].conv1.in_channels
        self.out_channels = net.fc.in_features

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        return self.layer4(self.layer3(self.layer2(low))), low


def dilate_layer(layer: nn.Sequential, dilation: int):
    """Stride 1 and ``dilation`` for every 3x3 conv of a ResNet layer, in every block; the
    first block's downsampling 1x1 conv gets stride 1 too."""
    for name, m in layer.named_modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            m.stride, m.dilation, m.padding = (1, 1), (dilation, dilation), (dilation, dilation)
        elif isinstance(m, nn.Conv2d) and name.endswith('downsample.0'):
            m.stride = (1, 1)


def load_pretrained_backbone(backbone: DilatedResNet, path: str, depth: int):
    """Load a local torchvision ResNet checkpoint (a state dict, or one under ``state_dict`` /
    ``model``; ``module.`` stripped; ``fc.*`` ignored) into ``backbone``, checking every key."""
    where = f'MODEL.TRUNK.DEEPLABV3PLUS.PRETRAINED_PATH={path}'
    if not osp.isfile(path):
        raise FileNotFoundError(f'{where}: no such file. Give a local torchvision ResNet-{depth} '
                                f'state dict (e.g. resnet{depth}-*.pth), or "" for random init')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means an unusable file
        raise PretrainedWeightsError(f'{where}: torch.load(weights_only=True) failed '
                                     f'({type(e).__name__}); expected a torchvision ResNet '
                                     f'state dict saved with torch.save') from e
    for wrapper in ('state_dict', 'model'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(wrapper), dict):
            ckpt = ckpt[wrapper]
            break
    if not isinstance(ckpt, dict):
        raise PretrainedWeightsError(f'{where} holds a {type(ckpt).__name__}, not a state dict')
    state_dict = {(k[len('module.'):] if k.startswith('module.') else k): v
                  for k, v in ckpt.items()}
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith('fc.')}
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(f'{k} {tuple(getattr(state_dict[k], "shape", ()))} vs '
                        f'{tuple(expected[k].shape)}'
                        for k in set(expected) & set(state_dict)
                        if not isinstance(state_dict[k], torch.Tensor)
                        or state_dict[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        def show(keys):
            return ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        raise PretrainedWeightsError(
            f'{where} does not fit a torchvision ResNet-{depth}: {len(missing)} missing '
            f'[{show(missing)}], {len(unexpected)} unexpected [{show(unexpected)}], '
            f'{len(mismatched)} shape mismatches [{show(mismatched)}]. Check DEPTH, or give '
            f'the torchvision resnet{depth} weights')
    backbone.load_state_dict(state_dict, strict=True)


class DeepLabV3Plus(nn.Module):
    """ViCE's DeepLabV3+ from keyword arguments (see the module docstring).

    Args:
        depth: ResNet depth, 18, 34, 50 or 101.
        output_stride: 8 or 16.
        aspp_rates: ASPP dilation rates, first one 1; None = the default for the output stride.
        decoder_channels: D, the width of ASPP and decoder.
        out_feat_dim: channels of the output embedding.
        pretrained_path: '' = random init; else a local torchvision ResNet checkpoint.
    """

    def __init__(self, depth: int = 50, output_stride: int = 8,
                 aspp_rates: Optional[Sequence[int]] = None, decoder_channels: int = 256,
                 out_feat_dim: int = 128, pretrained_path: str = '',
                 where: str = 'DeepLabV3Plus'):
        super().__init__()
        if depth not in RESNETS:
            raise ValueError(f'{where}: DEPTH={depth} is not one of {sorted(RESNETS)}')
        if output_stride not in DEFAULT_RATES:
            raise ValueError(f'{where}: OUTPUT_STRIDE={output_stride} is not 8 or 16')
        rates = tuple(int(r) for r in (aspp_rates or DEFAULT_RATES[output_stride]))
        if not rates or rates[0] != 1 or any(r < 1 for r in rates):
            raise ValueError(f'{where}: ASPP_RATES={list(rates)} must start with 1 (the 1x1 '
                             f'branch) and be positive, e.g. {list(DEFAULT_RATES[output_stride])}')
        self.depth, self.output_stride, self.aspp_rates = depth, output_stride, rates
        self.out_feat_dim = out_feat_dim
        backbone = DilatedResNet(depth, output_stride)
        aspp = ASPP(backbone.out_channels, decoder_channels, rates)
        decoder = Decoder(backbone.skip_channels, decoder_channels, out_feat_dim)
        init_vice_weights(aspp)
        init_vice_weights(decoder)
        if pretrained_path:
            load_pretrained_backbone(backbone, pretrained_path, depth)
        else:
            init_vice_weights(nn.ModuleList([backbone.conv1, backbone.bn1]))
        self._feature_blocks = nn.ModuleDict(
            [('backbone', backbone), ('aspp', aspp), ('decoder', decoder)])

    def forward(self, x: torch.Tensor, out_feat_keys: Optional[List[str]] = None
                ) -> List[torch.Tensor]:
        """(N, 3, H, W) -> [(N, OUT_FEAT_DIM, H, W)], or one tensor per ``out_feat_keys``."""
        keys = list(out_feat_keys or ['out'])
        unknown = [k for k in keys if k not in FEATURE_KEYS]
        if unknown:
            raise ValueError(f'deeplabv3plus: unknown out_feat_keys {unknown}; known: '
                             f'{list(FEATURE_KEYS)}')
        blocks = self._feature_blocks
        res5, res2 = blocks['backbone'](x)
        feats = {'res2': res2, 'res5': res5}
        if 'aspp' in keys or 'out' in keys:
            feats['aspp'] = blocks['aspp'](res5)
        if 'out' in keys:
            out = blocks['decoder'](feats['aspp'], res2)
            feats['out'] = F.interpolate(out, size=x.shape[2:], mode='bilinear',
                                         align_corners=True)
        return [feats[k] for k in keys]


def trunk_kwargs(trunk_config, where='MODEL.TRUNK.DEEPLABV3PLUS') -> dict:
    """``DeepLabV3Plus`` keyword arguments from a ``MODEL.TRUNK.DEEPLABV3PLUS`` mapping."""
    trunk_config = dict(trunk_config or {})
    unknown = sorted(set(trunk_config) - set(DEFAULTS))
    if unknown:
        raise KeyError(f'{where}: unknown keys {unknown}; known: {sorted(DEFAULTS)}')
    cfg = {**DEFAULTS, **trunk_config}
    rates = cfg['ASPP_RATES']
    return {'depth': int(cfg['DEPTH']), 'output_stride': int(cfg['OUTPUT_STRIDE']),
            'aspp_rates': None if rates is None else [int(r) for r in rates],
            'decoder_channels': int(cfg['DECODER_CHANNELS']),
            'out_feat_dim': int(cfg['OUT_FEAT_DIM']),
            'pretrained_path': str(cfg['PRETRAINED_PATH'] or '')}
