"""MMSeg backbone ``FrozenResNet``: a ResNet with frozen weights, for linear probing.

The linear-probe protocol evaluates the (self-supervised) features as they are, so the
backbone never trains: every parameter has ``requires_grad=False``, the module is always in
eval mode (BatchNorm keeps the running statistics of pretraining, whatever ``train()``
is called with), and ``forward`` runs under ``torch.no_grad()``.

Parameter names are torchvision's (mmseg's ResNet with ``deep_stem=False``): ``conv1``,
``bn1``, ``layer{1..4}.{i}.conv{1,2,3}`` / ``bn{1,2,3}`` / ``downsample.{0,1}``.

``checkpoint``: a file written by ``tools/convert_checkpoint.py ... --dst-format mmseg``::

    {'state_dict': {'backbone.conv1.weight': tensor, ...}, 'meta': {...}}

loaded with ``torch.load(weights_only=True)`` after checking every key and shape against
the model (one error lists all missing / unexpected / mismatched keys). ``None`` keeps the
random initialisation, which is deterministic under the run's seed.

Output shapes, input (N, 3, H, W), with the default strides (1, 2, 2, 2):
``out_indices`` entry i gives (N, C_i, H / 2^(i+2), W / 2^(i+2)) with C = (64, 128, 256, 512)
for depth 18/34 and (256, 512, 1024, 2048) for 50/101. Each dilated stage (stride 1)
keeps the resolution of the stage before it: strides (1, 2, 1, 1) with dilations
(1, 1, 2, 4) give output stride 8, e.g. depth 18, out_indices=(3,):
((N, 512, H/8, W/8),); depth 50: ((N, 2048, H/8, W/8),).
"""
import re

import torch
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS

CONVERT_ADVICE = ('convert it with python tools/convert_checkpoint.py IN OUT '
                  '--src-format vissl --dst-format mmseg')
PREFIX = 'backbone.'


class CheckpointMismatchError(RuntimeError):
    """A backbone checkpoint that does not fit the configured ResNet."""


def load_backbone_state_dict(path, prefix=PREFIX):
    """The tensors of a converted backbone checkpoint, with ``prefix`` stripped."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(
            f'backbone checkpoint not found: {path}. Check model.backbone.checkpoint; to '
            f'make one from a VISSL checkpoint, {CONVERT_ADVICE}') from None
    except Exception as e:
        message = str(e)
        found = re.search(r'Unsupported global: GLOBAL [\w.]+', message)
        cause = found.group(0) if found else ' '.join(message.split())[:300]
        raise CheckpointMismatchError(
            f'cannot read backbone checkpoint {path} with torch.load(weights_only=True) '
            f'({type(e).__name__}: {cause}); a converted checkpoint holds only tensors and '
            f'plain meta: {CONVERT_ADVICE}') from e
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('state_dict'), dict):
        raise CheckpointMismatchError(
            f'{path} is not a converted backbone checkpoint (expected a dict with a '
            f'"state_dict" of backbone.* tensors); {CONVERT_ADVICE}')
    return {(k[len(prefix):] if k.startswith(prefix) else k): v
            for k, v in checkpoint['state_dict'].items()}


def check_state_dict(expected, given, path):
    """Raise one :class:`CheckpointMismatchError` listing every missing, unexpected and
    shape-mismatched key of ``given`` against ``expected`` (both name -> tensor)."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = sorted(f'{k}: checkpoint {tuple(given[k].shape)} vs model '
                        f'{tuple(expected[k].shape)}' for k in set(expected) & set(given)
                        if tuple(given[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or mismatched:
        def show(keys):
            return ', '.join(keys[:12]) + (f', ... ({len(keys)} in all)' if len(keys) > 12
                                           else '')
        raise CheckpointMismatchError(
            f'backbone checkpoint {path} does not match the model: '
            f'{len(missing)} missing keys [{show(missing)}]; '
            f'{len(unexpected)} unexpected keys [{show(unexpected)}]; '
            f'{len(mismatched)} shape mismatches [{show(mismatched)}]. Check '
            f'model.backbone.depth in the config; {CONVERT_ADVICE}')


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
            state_dict = load_backbone_state_dict(self.checkpoint)
            check_state_dict(self.state_dict(), state_dict, self.checkpoint)
            self.load_state_dict(state_dict, strict=True)
            from mmengine.logging import print_log
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
