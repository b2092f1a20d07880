"""torchvision ResNet state dicts: plain, or under 'state_dict' / 'model', 'module.' stripped."""
import torch

from converters.checkpoint_file import ConversionError, load_checkpoint_file


def read_torchvision(path):
    checkpoint = load_checkpoint_file(path)
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict) or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ConversionError(f'{path} is not a torchvision state dict (a dict of tensors)')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in checkpoint.items()}
    return state, []
