"""Head ``dense_swav_head``: per-pixel projection, L2 normalisation and prototype scores.

Spec: shared/specs/pretrain.md 1(a) C. Input: the trunk's dense map x (B, C, H, W). Output,
for the whole batch at once (the original ran the head image by image)::

    z = normalize(proj(x), dim=1)         (B, D, H, W), unit L2 over D at every pixel
    s = C z                               (B, K, H, W), C = prototypes0.weight (K, D)
    returns [z, s]

ViCE uses ``identity_projection: True`` (its ``MODEL.HEAD.USE_IDENTITY``): proj is the
identity, so D is the trunk's OUT_FEAT_DIM (128) and ``dims`` only names D as ``dims[-1]``.
With ``identity_projection: False`` proj is a per-pixel MLP of 1x1 convs through ``dims``
(BatchNorm if ``use_bn`` and ReLU between layers, none after the last), as SwAV's head.
The prototypes are ``prototypes0 = Linear(D, K, bias=False)`` so VISSL's
``TEMP_FROZEN_PARAMS_ITER_MAP: [[module.heads.0.prototypes0.weight, 313]]`` freezes them; their
rows are renormalised after every step by ``DenseSwAVNormalizePrototypesHook``.

Config: ``MODEL.HEAD.PARAMS: [[dense_swav_head, {dims: [256, 256, 128], use_bn: True,
num_clusters: [128], identity_projection: True}]]``.
"""
from typing import List, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from vissl.models.heads import register_model_head


def dense_mlp(dims: Sequence[int], use_bn: bool) -> nn.Sequential:
    """1x1-conv MLP dims[0] -> ... -> dims[-1]; BN (optional) + ReLU after all but the last."""
    layers = []
    for i, (c_in, c_out) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Conv2d(c_in, c_out, kernel_size=1, bias=last or not use_bn))
        if not last:
            if use_bn:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@register_model_head('dense_swav_head')
class DenseSwAVHead(nn.Module):
    """See the module docstring."""

    def __init__(self, model_config, dims: List[int], use_bn: bool = True,
                 num_clusters: Union[int, List[int]] = 128, identity_projection: bool = True):
        super().__init__()
        clusters = [num_clusters] if isinstance(num_clusters, int) else list(num_clusters)
        if len(clusters) != 1:
            raise ValueError(f'dense_swav_head: num_clusters={clusters}; ViCE uses one set of '
                             f'prototypes, give one number (e.g. [128])')
        if not identity_projection and len(dims) < 2:
            raise ValueError(f'dense_swav_head: dims={list(dims)} needs at least an input and '
                             f'an output width for the projection MLP')
        self.embedding_dim = int(dims[-1])
        self.identity_projection = identity_projection
        self.projection = nn.Identity() if identity_projection else dense_mlp(dims, use_bn)
        self.nmb_heads = 1
        self.prototypes0 = nn.Linear(self.embedding_dim, clusters[0], bias=False)

    def forward(self, x):
        if self.identity_projection and x.shape[1] != self.embedding_dim:
            raise ValueError(
                f'dense_swav_head: the trunk gives {x.shape[1]} channels but dims[-1] is '
                f'{self.embedding_dim}; with identity_projection they must be equal (set the '
                f'head\'s dims[-1] to the trunk\'s OUT_FEAT_DIM)')
        z = F.normalize(self.projection(x), dim=1, p=2)
        scores = F.conv2d(z, self.prototypes0.weight[:, :, None, None])
        return [z, scores]
