"""MMSeg backbone ``FrozenResNet``: a ResNet loaded from a converted checkpoint, frozen.

The linear-probe protocol: the self-supervised features are evaluated as they are, so the
backbone never trains: no gradients, BatchNorm always in eval mode (running statistics
from pretraining), forward under ``torch.no_grad()``.

``checkpoint``: a file written by ``tools/convert_checkpoint.py ... --dst-format mmseg``
(``{'state_dict': {'backbone.<torchvision name>': tensor}, 'meta': {...}}``), loaded with
every key and shape checked; ``None`` keeps the (seeded) random initialisation.

Input (N, 3, H, W); output: a tuple with one map per ``out_indices`` entry, e.g. for depth
18, strides (1, 2, 1, 1) and dilations (1, 1, 2, 4) (output stride 8): (N, 512, H/8, W/8)
for index 3.
"""
import torch
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS

CONVERT_HINT = ('convert it with: python tools/convert_checkpoint.py IN OUT '
                '--src-format vissl --dst-format mmseg')


class CheckpointMismatchError(RuntimeError):
    pass


def load_backbone_state_dict(path, prefix='backbone.'):
    """The backbone tensors of a converted checkpoint, with ``prefix`` removed."""
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f'backbone checkpoint not found: {path}') from None
    except Exception as e:
        raise CheckpointMismatchError(f'cannot read backbone checkpoint {path} ({e}); '
                                      f'{CONVERT_HINT}') from e
    if not isinstance(checkpoint, dict) or 'state_dict' not in checkpoint:
        raise CheckpointMismatchError(f'{path} is not a converted MMSeg backbone checkpoint '
                                      f'(no "state_dict" key); {CONVERT_HINT}')
    return {k[len(prefix):] if k.startswith(prefix) else k: v
            for k, v in checkpoint['state_dict'].items()}


def check_state_dict(expected, given, path):
    """Raise one error listing missing, unexpected and shape-mismatched keys."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    mismatched = sorted(f'{k}: checkpoint {tuple(given[k].shape)} vs model '
                        f'{tuple(expected[k].shape)}' for k in set(expected) & set(given)
                        if given[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        def show(keys):
            return ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        raise CheckpointMismatchError(
            f'backbone checkpoint {path} does not match the model: '
            f'missing keys [{show(missing)}]; unexpected keys [{show(unexpected)}]; '
            f'shape mismatches [{show(mismatched)}]. Check the depth in the config, or '
            f'{CONVERT_HINT}')


@MODELS.register_module()
class FrozenResNet(ResNet):
    def __init__(self, depth, checkpoint=None, **kwargs):
        kwargs.setdefault('norm_eval', True)
        super().__init__(depth=depth, **kwargs)
        self.checkpoint = checkpoint
        for param in self.parameters():
            param.requires_grad_(False)

    def init_weights(self):
        super().init_weights()  # the seeded random initialisation
        if self.checkpoint is not None:
            state_dict = load_backbone_state_dict(self.checkpoint)
            check_state_dict(self.state_dict(), state_dict, self.checkpoint)
            self.load_state_dict(state_dict, strict=True)

    def train(self, mode=True):
        super().train(False)  # BatchNorm statistics stay those of pretraining
        return self

    def forward(self, x):
        with torch.no_grad():
            return super().forward(x)
