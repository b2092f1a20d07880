"""Small helpers shared by readers: prefix stripping, tensor checks."""
import torch

from converters.errors import ConversionError


def strip_prefix(key, prefix):
    return key[len(prefix):] if key.startswith(prefix) else key


def require_tensors(state_dict, path, where, hint):
    """Raise naming the first non-tensor entry of ``state_dict`` (found at ``where``)."""
    if not isinstance(state_dict, dict):
        raise ConversionError(f'{path}: {where} is a {type(state_dict).__name__}, not a dict of '
                              f'tensors; {hint}')
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f'{path}: {where}[{key!r}] is a {type(value).__name__}, not a '
                                  f'tensor; {hint}')
    return state_dict


def show_keys(keys, limit=8):
    keys = list(keys)
    text = ', '.join(repr(k) for k in keys[:limit])
    return text + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')
