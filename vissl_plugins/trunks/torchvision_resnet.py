"""Trunk ``torchvision_resnet``: a torchvision ResNet of any depth (18, 34, 50, 101, 152).

VISSL's own ``resnet`` trunk builds Bottleneck ResNets (depth >= 50) only; laptop and CI
runs want ResNet-18/34. This trunk keeps VISSL's naming (``_feature_blocks.conv1``,
``_feature_blocks.layer1.0.conv1`` ...), so checkpoints of both trunks convert the same way
(``converters``) and VISSL's feature names (``res2`` .. ``res5``, ``res5avg``) work.

Config::

    MODEL.TRUNK.NAME: torchvision_resnet
    MODEL.TRUNK.TORCHVISION_RESNET: {DEPTH: 18, ZERO_INIT_RESIDUAL: False}

Input (N, 3, H, W); outputs per requested key, e.g. ``res5avg`` -> (N, C, 1, 1) with
C = 512 (depth 18/34) or 2048 (depth >= 50), ``res4`` -> (N, C/2, H/16, W/16).
"""
from typing import List

import torch
import torch.nn as nn
import torchvision.models as tv_models
from vissl.models.model_helpers import Flatten, get_trunk_forward_outputs
from vissl.models.trunks import register_model_trunk

DEPTHS = {18: tv_models.resnet18, 34: tv_models.resnet34, 50: tv_models.resnet50,
          101: tv_models.resnet101, 152: tv_models.resnet152}

# VISSL's common feature names -> our block names (as in VISSL's resnet trunk)
FEATURE_NAMES = {'conv1': 'conv1_relu', 'res1': 'maxpool', 'res2': 'layer1', 'res3': 'layer2',
                 'res4': 'layer3', 'res5': 'layer4', 'res5avg': 'avgpool', 'flatten': 'flatten'}


@register_model_trunk('torchvision_resnet')
class TorchvisionResNet(nn.Module):
    def __init__(self, model_config, model_name: str):
        super().__init__()
        trunk_config = model_config.TRUNK.TORCHVISION_RESNET
        depth = int(trunk_config.DEPTH)
        if depth not in DEPTHS:
            raise ValueError(f'MODEL.TRUNK.TORCHVISION_RESNET.DEPTH={depth} is not one of '
                             f'{sorted(DEPTHS)}')
        net = DEPTHS[depth](weights=None,
                            zero_init_residual=bool(trunk_config.ZERO_INIT_RESIDUAL))
        self.depth = depth
        self.out_channels = net.fc.in_features
        self._feature_blocks = nn.ModuleDict([
            ('conv1', net.conv1), ('bn1', net.bn1), ('conv1_relu', net.relu),
            ('maxpool', net.maxpool), ('layer1', net.layer1), ('layer2', net.layer2),
            ('layer3', net.layer3), ('layer4', net.layer4), ('avgpool', net.avgpool),
            ('flatten', Flatten(1)),
        ])
        self.feat_eval_mapping = FEATURE_NAMES

    def forward(self, x: torch.Tensor, out_feat_keys: List[str] = None) -> List[torch.Tensor]:
        return get_trunk_forward_outputs(feat=x, out_feat_keys=out_feat_keys,
                                         feature_blocks=self._feature_blocks,
                                         feature_mapping=self.feat_eval_mapping)
