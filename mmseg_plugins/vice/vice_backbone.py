"""MMSeg backbone ``ViCEBackbone``: ViCE's frozen DeepLabV3+ trunk, for the linear probe.

ViCE's evaluation (spec 1(a) G) classifies the trunk's 128-d embedding, L2-normalised over
channels, at input resolution: input (N, 3, H, W) -> ``[z]``, z (N, 128, H, W) with
``||z[n, :, i, j]|| = 1``. The trunk never trains: ``requires_grad=False`` everywhere, always in
eval mode (BatchNorm keeps the statistics of pretraining, whatever ``train()`` is called with),
forward under ``torch.no_grad()``.

The trunk is built either

* from the VISSL experiment YAML of the pretraining run (``vissl_config=...``; only
  ``config.MODEL.TRUNK`` is read: ``NAME: deeplabv3plus`` and its ``DEEPLABV3PLUS`` options), or
* from ``trunk=dict(depth=50, output_stride=8, aspp_rates=None, decoder_channels=256,
  out_feat_dim=128)`` (``densessl.vice.deeplabv3plus.DeepLabV3Plus`` arguments),

and its weights come from ``checkpoint``: a VISSL checkpoint of that trunk, in any layout
``converters``' ``vissl`` reader accepts (``model_final_checkpoint_phaseN.torch``, or an exported
``{'trunk': {...}}`` / flat ``trunk._feature_blocks.*`` file), read weights-only. Every trunk key
and shape is checked (one error lists the missing / unexpected / mismatched keys); the head
(prototypes) is ignored. ``checkpoint=None`` keeps the random initialisation (seeded by the
run), or, from a YAML with ``PRETRAINED_PATH``, the torchvision weights it names.

The weights are loaded when the module is built (``init_weights`` changes nothing), so the
backbone is usable outside a runner. ``vissl_plugins`` is imported only when a ViCEBackbone is
built, so other MMSeg configs do not load VISSL.
"""
import logging
import os.path as osp

import torch
import torch.nn.functional as F
import yaml
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmseg.registry import MODELS

TRUNK_PREFIX = '_feature_blocks.'


class ViCECheckpointError(RuntimeError):
    """A ViCE trunk checkpoint or VISSL YAML that cannot be used; the message says why."""


def trunk_options_from_vissl_yaml(path):
    """``config.MODEL.TRUNK.DEEPLABV3PLUS`` of a VISSL experiment YAML (a dict, may be empty)."""
    where = f'model.backbone.vissl_config={path}'
    if not osp.isfile(path):
        raise FileNotFoundError(f'{where}: no such file; give the VISSL YAML of the pretraining '
                                f'run (e.g. configs/config/pretrain/vice/<name>.yaml)')
    try:
        with open(path) as f:
            document = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ViCECheckpointError(f'{where}: not valid YAML ({e})') from e
    node = document
    for key in ('config', 'MODEL', 'TRUNK'):
        if not isinstance(node, dict) or key not in node:
            raise ViCECheckpointError(
                f'{where}: no config.MODEL.TRUNK (stopped at {key!r}); the YAML must set '
                f'config.MODEL.TRUNK.NAME: deeplabv3plus itself. Alternatively pass '
                f'trunk=dict(depth=..., ...) instead of vissl_config')
        node = node[key]
    if node.get('NAME') != 'deeplabv3plus':
        raise ViCECheckpointError(f'{where}: config.MODEL.TRUNK.NAME is {node.get("NAME")!r}, '
                                  f'not deeplabv3plus; ViCEBackbone takes ViCE trunks only')
    return dict(node.get('DEEPLABV3PLUS') or {})


def read_trunk_state_dict(path):
    """The ``_feature_blocks.*`` tensors of a VISSL checkpoint of a ViCE trunk."""
    from converters import ConversionError
    from converters.readers.vissl import read_vissl
    try:
        ckpt = read_vissl(path, log=lambda line: print_log(line, logger='current'))
    except ConversionError as e:
        raise ViCECheckpointError(f'model.backbone.checkpoint: {e}') from e
    return {TRUNK_PREFIX + k: v for k, v in ckpt.state_dict.items()}


def check_trunk_state_dict(expected, given, path):
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = sorted(f'{k}: checkpoint {tuple(given[k].shape)} vs model '
                        f'{tuple(expected[k].shape)}' for k in set(expected) & set(given)
                        if tuple(given[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or mismatched:
        def show(keys):
            return ', '.join(keys[:10]) + (f', ... ({len(keys)} in all)' if len(keys) > 10
                                           else '')
        raise ViCECheckpointError(
            f'ViCE trunk checkpoint {path} does not match the trunk: {len(missing)} missing '
            f'keys [{show(missing)}]; {len(unexpected)} unexpected keys [{show(unexpected)}]; '
            f'{len(mismatched)} shape mismatches [{show(mismatched)}]. Use the VISSL YAML of '
            f'the run that wrote the checkpoint (vissl_config=...), or trunk options (depth, '
            f'decoder_channels, aspp_rates, out_feat_dim) that match it')


@MODELS.register_module()
class ViCEBackbone(BaseModule):
    """Frozen ViCE DeepLabV3+ trunk returning ``[L2-normalised (N, 128, H, W)]``.

    Args:
        vissl_config (str, optional): VISSL experiment YAML with config.MODEL.TRUNK; when
            given, it defines the trunk and ``trunk`` is ignored.
        trunk (dict, optional): ``DeepLabV3Plus`` keyword arguments, used without a YAML.
        checkpoint (str, optional): VISSL checkpoint of the trunk; None = random init.
        normalize (bool): L2-normalise over channels (ViCE's protocol: True).
    """

    def __init__(self, vissl_config=None, trunk=None, checkpoint=None, normalize=True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        from densessl.vice.deeplabv3plus import DeepLabV3Plus, trunk_kwargs
        if vissl_config is None and trunk is None:
            raise ValueError('ViCEBackbone: give vissl_config (the VISSL YAML of the pretraining '
                             'run) or trunk (DeepLabV3Plus arguments, e.g. dict(depth=50))')
        if vissl_config is not None:
            where = f'{vissl_config}: config.MODEL.TRUNK.DEEPLABV3PLUS'
            kwargs = trunk_kwargs(trunk_options_from_vissl_yaml(vissl_config), where)
            if trunk is not None:
                print_log(f'ViCEBackbone: trunk built from {vissl_config}; model.backbone.trunk '
                          f'is ignored', logger='current')
        else:
            where, kwargs = 'model.backbone.trunk', dict(trunk)
        if checkpoint is not None:
            kwargs['pretrained_path'] = ''  # every tensor comes from the checkpoint
        self.trunk = DeepLabV3Plus(**kwargs, where=where)
        self.checkpoint, self.normalize = checkpoint, normalize
        if checkpoint is not None:
            state_dict = read_trunk_state_dict(checkpoint)
            check_trunk_state_dict(self.trunk.state_dict(), state_dict, checkpoint)
            self.trunk.load_state_dict(state_dict, strict=True)
            print_log(f'ViCEBackbone: loaded {len(state_dict)} trunk tensors from {checkpoint}',
                      logger='current')
        else:
            print_log('ViCEBackbone: no checkpoint: the trunk is randomly initialised'
                      + (f' (backbone from {kwargs["pretrained_path"]})'
                         if kwargs.get('pretrained_path') else ''),
                      logger='current', level=logging.WARNING)
        for param in self.parameters():
            param.requires_grad_(False)
        super().train(False)

    def init_weights(self):
        """Nothing to do: the weights were set when the module was built."""

    def train(self, mode=True):
        """Always eval mode: BatchNorm statistics stay those of the checkpoint."""
        return super().train(False)

    def forward(self, x):
        """(N, 3, H, W) -> [(N, OUT_FEAT_DIM, H, W)], unit L2 norm over channels."""
        with torch.no_grad():
            z = self.trunk(x)[0]
            return [F.normalize(z, dim=1) if self.normalize else z]
