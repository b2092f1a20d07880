"""Registered wrappers of ReCo's and U2PL's DeepLabV3+ (``densessl.semisup.networks``) for
``SemiSupervisedSegmentor(network=...)``: ``forward(x) -> dict(logits, rep[, aux_logits])``.

``backbone_checkpoint`` starts the ResNet from a file, checked key by key (any
``tools/convert_checkpoint.py --dst-format mmseg`` or ``torchvision`` output: ImageNet, or
this project's SimCLR / ViCE / SlotCon pretraining), after the random init of the rest::

    model = dict(network=dict(type='ReCoNetwork', num_classes=19, depth=101,
                              backbone_checkpoint='work_dirs/slotcon_r101_mmseg.pth'))

``norm_cfg`` is mmseg's (``SyncBN`` in the protocol configs; the mmseg compat fix makes it
``BN`` on a machine without a GPU).
"""
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from densessl.semisup.networks import ReCoDeepLabV3Plus, U2PLDeepLabV3Plus, load_backbone_weights


def _norm_layer(norm_cfg):
    return lambda channels: build_norm_layer(norm_cfg, channels)[1]


class _SemiSupervisedNetwork(BaseModule):
    """A densessl network plus an optional checked backbone checkpoint."""

    def __init__(self, net, backbone_checkpoint=None, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.net = net
        self.backbone_checkpoint = backbone_checkpoint

    def init_weights(self):
        super().init_weights()
        if self.backbone_checkpoint:
            load_backbone_weights(self.net.backbone, self.backbone_checkpoint,
                                  where=f'{type(self).__name__}.backbone_checkpoint')

    def forward(self, x):
        return self.net(x)


@MODELS.register_module()
class ReCoNetwork(_SemiSupervisedNetwork):
    """ReCo's DeepLabV3+ (torchvision-style ResNet, OS16 by default, 256-d representation)."""

    def __init__(self, num_classes, depth=101, output_stride=16, rep_dim=256,
                 norm_cfg=dict(type='BN'), backbone_checkpoint=None, init_cfg=None):
        super().__init__(ReCoDeepLabV3Plus(num_classes, depth=depth, output_stride=output_stride,
                                           rep_dim=rep_dim, norm_layer=_norm_layer(norm_cfg)),
                         backbone_checkpoint, init_cfg)


@MODELS.register_module()
class U2PLNetwork(_SemiSupervisedNetwork):
    """U2PL's DeepLabV3+ (deep-stem ResNet, OS8 multi-grid by default, aux head)."""

    def __init__(self, num_classes, depth=101, output_stride=8, norm_cfg=dict(type='BN'),
                 backbone_checkpoint=None, init_cfg=None, **kwargs):
        super().__init__(U2PLDeepLabV3Plus(num_classes, depth=depth, output_stride=output_stride,
                                           norm_layer=_norm_layer(norm_cfg), **kwargs),
                         backbone_checkpoint, init_cfg)
