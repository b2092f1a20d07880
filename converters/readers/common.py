"""Helpers shared by readers and format detection: prefix stripping, tensor checks, finding
the state dict inside a wrapper, and describing what a file's keys look like."""
import re
from collections import Counter

import torch

from converters.errors import ConversionError

MODULE = 'module.'  # DataParallel / DistributedDataParallel prefix
# first component of a torchvision ResNet key (conv1.weight, bn1.*, layerN.*, fc.*)
_RESNET_ROOT = re.compile(r'^(conv1|bn1|layer[1-4]|fc)$')
# first components that only say where a key sits (grouped with the next component)
_WRAPPER_PARTS = ('module', 'loss', 'heads', 'trunk')


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


def take_encoder(state_dict, prefix):
    """The sub-network under ``(module.)prefix`` (e.g. MoCo's ``encoder_q.``, SimSiam's
    ``encoder.``) with ``prefix`` stripped, without its ``fc.*`` (those methods' projection
    head, not a classifier). Returns ``(encoder_state_dict, dropped_keys)``: every other key
    of ``state_dict`` is dropped."""
    head = prefix + 'fc.'
    encoder, dropped = {}, []
    for key, value in state_dict.items():
        bare = strip_prefix(key, MODULE)
        if bare.startswith(prefix) and not bare.startswith(head):
            encoder[bare[len(prefix):]] = value
        else:
            dropped.append(key)
    return encoder, dropped


def show_keys(keys, limit=8):
    keys = list(keys)
    text = ', '.join(repr(k) for k in keys[:limit])
    return text + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def is_tensor_dict(obj):
    """A non-empty dict whose values are all tensors (a state dict)."""
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(v, torch.Tensor) for v in obj.values()))


def find_state_dict(obj, wrappers):
    """The state dict in a checkpoint: ``obj[name]`` for the first ``name`` of ``wrappers``
    that holds a dict, else ``obj`` itself when it is a dict of tensors.

    Returns ``(state_dict, where, other_top_level_keys)``, or ``(None, None, [])``.
    """
    if not isinstance(obj, dict):
        return None, None, []
    for name in wrappers:
        if isinstance(obj.get(name), dict):
            return obj[name], f'checkpoint[{name!r}]', [k for k in obj if k != name]
    if is_tensor_dict(obj):
        return obj, 'the checkpoint', []
    return None, None, []


def key_group(key):
    """The part of ``key`` that tells where it comes from: the prefix before torchvision
    ResNet names as ``'<prefix><resnet>'`` (``'module.encoder_q.<resnet>'``), otherwise the
    first component (two after ``module.`` / ``loss.`` / ``heads.`` / ``trunk.``) as
    ``'module.projector_q.*'``; a key that short stays whole (``'module.queue'``)."""
    parts = str(key).split('.')
    for i, part in enumerate(parts[:-1]):
        if _RESNET_ROOT.match(part):
            return ''.join(p + '.' for p in parts[:i]) + '<resnet>'
    depth = 2 if parts[0] in _WRAPPER_PARTS else 1
    return str(key) if len(parts) <= depth else '.'.join(parts[:depth]) + '.*'


def group_keys(keys):
    """``'group (count), ...'`` over ``key_group``, in first-seen order."""
    counts = Counter(key_group(k) for k in keys)
    return ', '.join(f'{group} ({n})' for group, n in counts.items())
