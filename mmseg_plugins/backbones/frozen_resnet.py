"""MMSeg backbone ``FrozenResNet``: a ResNet with frozen weights, for linear probing.

The linear-probe protocol evaluates the (self-supervised) features as they are, so the
backbone never trains: every parameter has ``requires_grad=False``, the module is always in
eval mode (BatchNorm keeps the running statistics of pretraining, whatever ``train()``
is called with), and ``forward`` runs under ``torch.no_grad()``.

Parameter names are torchvision's (mmseg's ResNet with ``deep_stem=False``): ``conv1``,
``bn1``, ``layer{1..4}.{i}.conv{1,2,3}`` / ``bn{1,2,3}`` / ``downsample.{0,1}``.

``checkpoint``: a file written by ``tools/convert_checkpoint.py ... --dst-format mmseg``,
the file mmseg's ``init_cfg=dict(type='CheckedPretrained' / 'Pretrained')`` reads::

    {'state_dict': {'conv1.weight': tensor, ...}, 'meta': {...}}

loaded with ``torch.load(weights_only=True)`` after checking every key and shape against
the model (one error lists all missing / unexpected / mismatched keys). Keys of other
segmentor parts (``decode_head.*`` of a ViCE file) are set aside. Files written before the
converter was fixed carry a ``backbone.`` prefix on every key: they are still read (the
prefix is stripped, with a warning to convert again). ``None`` keeps the random
initialisation, which is deterministic under the run's seed.

Output shapes, input (N, 3, H, W), with the default strides (1, 2, 2, 2):
``out_indices`` entry i gives (N, C_i, H / 2^(i+2), W / 2^(i+2)) with C = (64, 128, 256, 512)
for depth 18/34 and (256, 512, 1024, 2048) for 50/101. Each dilated stage (stride 1)
keeps the resolution of the stage before it: strides (1, 2, 1, 1) with dilations
(1, 1, 2, 4) give output stride 8, e.g. depth 18, out_indices=(3,):
((N, 512, H/8, W/8),); depth 50: ((N, 2048, H/8, W/8),).
"""
import logging

import torch
from mmengine.logging import print_log
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS

from mmseg_plugins.checked_pretrained import (OLD_PREFIX, CheckpointMismatchError,
                                              describe_mismatch, mismatches,
                                              old_prefix_hint, read_state_dict, select_keys)

CONVERT_ADVICE = ('convert it with python tools/convert_checkpoint.py IN OUT '
                  '--src-format vissl --dst-format mmseg')
__all__ = ['FrozenResNet', 'CheckpointMismatchError', 'load_backbone_state_dict',
           'check_state_dict', 'CONVERT_ADVICE']


def load_backbone_state_dict(path, module_keys=()):
    """The backbone tensors of a converted checkpoint (torchvision names): other segmentor
    parts set aside; an old file's ``backbone.`` prefix stripped with a warning."""
    state_dict = read_state_dict(
        path, what='backbone checkpoint', require_state_dict=True,
        not_found_hint=f'Check model.backbone.checkpoint; to make one from a VISSL '
                       f'checkpoint, {CONVERT_ADVICE}')
    state_dict, _ = select_keys(state_dict, None, module_keys)
    if state_dict and all(k.startswith(OLD_PREFIX) for k in state_dict) and not any(
            k.startswith(OLD_PREFIX) for k in module_keys):
        print_log(f'FrozenResNet: {path} has the old layout (every key prefixed '
                  f'{OLD_PREFIX!r}); read it with the prefix stripped. mmseg\'s init_cfg '
                  f'Pretrained refuses this layout: convert the pretraining checkpoint again '
                  f'(tools/convert_checkpoint.py ... --dst-format mmseg)', logger='current',
                  level=logging.WARNING)
        state_dict = {k[len(OLD_PREFIX):]: v for k, v in state_dict.items()}
    return state_dict


def check_state_dict(expected, given, path):
    """Raise one :class:`CheckpointMismatchError` listing every missing, unexpected and
    shape-mismatched key of ``given`` against ``expected`` (both name -> tensor)."""
    missing, unexpected, mismatched = mismatches(expected, given)
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            f'backbone {describe_mismatch(path, missing, unexpected, mismatched)}. '
            f'{old_prefix_hint(expected, given)}Check model.backbone.depth in the config; '
            f'{CONVERT_ADVICE}')


@MODELS.register_module()
class FrozenResNet(ResNet):
    """Frozen ResNet (see the module docstring for the checkpoint format and shapes).

    Args:
        depth (int): 18, 34, 50 or 101.
        checkpoint (str, optional): converted backbone checkpoint; None = random init.
        channels_last (bool): compute in channels-last memory format (same results, ~25%
            faster on CPU with oneDNN); outputs are returned contiguous (NCHW).
        **kwargs: mmseg ``ResNet`` arguments (``strides``, ``dilations``, ``out_indices``,
            ``contract_dilation``, ``norm_cfg``, ``style``, ...). ``zero_init_residual``
            defaults to False here: with it, mmseg zeroes the last BN of every residual
            branch, which would make a frozen random-init baseline degenerate.
    """

    def __init__(self, depth, checkpoint=None, channels_last=True, **kwargs):
        if depth not in (18, 34, 50, 101):
            raise ValueError(f'FrozenResNet: depth must be 18, 34, 50 or 101, got {depth}')
        if checkpoint is not None and (kwargs.get('pretrained') or kwargs.get('init_cfg')):
            raise ValueError('FrozenResNet: give either checkpoint or pretrained/init_cfg')
        kwargs.setdefault('zero_init_residual', False)
        kwargs['norm_eval'] = True
        super().__init__(depth=depth, **kwargs)
        self.checkpoint = checkpoint
        self.channels_last = channels_last
        for param in self.parameters():
            param.requires_grad_(False)
        if channels_last:
            self.to(memory_format=torch.channels_last)
        super().train(False)

    def init_weights(self):
        super().init_weights()  # the seeded random initialisation (mmseg's ResNet init)
        if self.checkpoint is not None:
            expected = self.state_dict()
            state_dict = load_backbone_state_dict(self.checkpoint, expected)
            check_state_dict(expected, state_dict, self.checkpoint)
            self.load_state_dict(state_dict, strict=True)
            print_log(f'FrozenResNet: loaded {len(state_dict)} tensors from {self.checkpoint}',
                      logger='current')

    def train(self, mode=True):
        """Always eval mode: BatchNorm statistics stay those of the checkpoint."""
        return super().train(False)

    def forward(self, x):
        with torch.no_grad():
            if not self.channels_last:
                return super().forward(x)
            outs = super().forward(x.contiguous(memory_format=torch.channels_last))
            return tuple(out.contiguous() for out in outs)
