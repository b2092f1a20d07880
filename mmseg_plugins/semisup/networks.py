"""Registered wrappers of ReCo's and U2PL's DeepLabV3+ (``densessl.semisup.networks``) for
``SemiSupervisedSegmentor(network=...)``: ``forward(x) -> dict(logits, rep[, aux_logits])``.

``init_cfg=dict(type='Pretrained', checkpoint=FILE)`` starts the ResNet from a file, checked
key by key (``densessl.semisup.networks.load_backbone_weights``: any
``tools/convert_checkpoint.py --dst-format mmseg`` or ``torchvision`` output, ImageNet or
this project's SimCLR / ViCE / SlotCon pretraining; ``torchvision://resnet101`` and URLs go
through mmengine's loader), after the random init of the rest::

    model = dict(network=dict(type='ReCoNetwork', num_classes=19, depth=101,
                              init_cfg=dict(type='Pretrained',
                                            checkpoint='work_dirs/slotcon_r101_mmseg.pth')))

The checkpoint holds the backbone only (the heads are new); a file that does not fit fails
naming every missing, unexpected and mis-shaped key. ``norm_cfg`` is mmseg's (``SyncBN`` in
the protocol configs; the mmseg compat fix makes it ``BN`` on a machine without a GPU).
"""
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from densessl.semisup.networks import ReCoDeepLabV3Plus, U2PLDeepLabV3Plus, load_backbone_weights
from mmseg_plugins.checked_pretrained import read_state_dict

PRETRAINED_TYPES = ('Pretrained', 'CheckedPretrained')


def _norm_layer(norm_cfg):
    return lambda channels: build_norm_layer(norm_cfg, channels)[1]


def pretrained_backbone(init_cfg, where):
    """The checkpoint of ``init_cfg=dict(type='Pretrained', checkpoint=...)``, or None (no
    init_cfg, or ``checkpoint=None``: a random start, the configs' override point for
    ``--cfg-options model.network.init_cfg.checkpoint=FILE``). Any other init type or key
    is refused: only the backbone has a start."""
    if init_cfg is None:
        return None
    if not isinstance(init_cfg, dict) or init_cfg.get('type') not in PRETRAINED_TYPES:
        raise ValueError(f"{where}: init_cfg must be dict(type='Pretrained', checkpoint=FILE) "
                         f'(the backbone\'s start) or None, got {init_cfg}')
    unknown = set(init_cfg) - {'type', 'checkpoint'}
    if unknown or 'checkpoint' not in init_cfg:
        raise ValueError(f'{where}: init_cfg {init_cfg} needs checkpoint=FILE (or None) and '
                         f'takes no other key ({sorted(unknown)})')
    return init_cfg['checkpoint']


class _SemiSupervisedNetwork(BaseModule):
    """A densessl network whose backbone may start from a checked checkpoint."""

    def __init__(self, net, init_cfg=None):
        super().__init__(init_cfg=None)
        self.net = net
        self.pretrained = pretrained_backbone(init_cfg, type(self).__name__)

    def init_weights(self):
        super().init_weights()
        if self.pretrained:
            where = f'{type(self).__name__} init_cfg checkpoint'
            state_dict = read_state_dict(self.pretrained, what=where)
            load_backbone_weights(self.net.backbone, state_dict,
                                  where=f'{where} {self.pretrained}')

    def forward(self, x):
        return self.net(x)


@MODELS.register_module()
class ReCoNetwork(_SemiSupervisedNetwork):
    """ReCo's DeepLabV3+ (torchvision-style ResNet, OS16 by default, 256-d representation)."""

    def __init__(self, num_classes, depth=101, output_stride=16, rep_dim=256,
                 norm_cfg=dict(type='BN'), init_cfg=None):
        super().__init__(ReCoDeepLabV3Plus(num_classes, depth=depth, output_stride=output_stride,
                                           rep_dim=rep_dim, norm_layer=_norm_layer(norm_cfg)),
                         init_cfg)


@MODELS.register_module()
class U2PLNetwork(_SemiSupervisedNetwork):
    """U2PL's DeepLabV3+ (deep-stem ResNet, OS8 multi-grid by default, aux head)."""

    def __init__(self, num_classes, depth=101, output_stride=8, norm_cfg=dict(type='BN'),
                 init_cfg=None, **kwargs):
        super().__init__(U2PLDeepLabV3Plus(num_classes, depth=depth, output_stride=output_stride,
                                           norm_layer=_norm_layer(norm_cfg), **kwargs),
                         init_cfg)
