"""Reading a checkpoint file with ``torch.load``, with one clear error per failure.

Weights-only first (``weights_only=True``): VISSL checkpoints and torchvision state dicts
load that way. Formats whose files pickle other Python objects (``argparse.Namespace`` in
SlotCon / MoCo checkpoints) pass ``trusted_pickle=True``: they are then loaded with
``weights_only=False``, which can run code from the file, and a note saying so is printed.
"""
import os.path as osp
import pickle
import re

import torch

from converters.errors import ConversionError


def _weights_only_detail(error):
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(error))  # torch's message has terminal bold
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if 'WeightsUnpickler error' in line:
            return line.split('. ')[0]
    return lines[0] if lines else type(error).__name__


def load_checkpoint(path, fmt, trusted_pickle=False, log=print):
    """``torch.load(path)`` on CPU; ``fmt`` (the source format) is named in errors."""
    if not osp.exists(path):
        raise ConversionError(f'input checkpoint not found: {path} (check the path)')
    if osp.isdir(path):
        raise ConversionError(f'input checkpoint {path} is a directory; pass the checkpoint '
                              f'file inside it (e.g. model_final_checkpoint_phaseN.torch)')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' not in str(e):
            raise _corrupt(path, e) from e
        if not trusted_pickle:
            if 'Unsupported global' not in str(e):  # not a class: damaged pickle data
                raise _corrupt(path, e, _weights_only_detail(e)) from e
            raise ConversionError(
                f'{path} is not a plain tensor checkpoint ({_weights_only_detail(e)}); the '
                f'{fmt!r} reader loads weights only. If it comes from another method, use '
                f'that method\'s --src-format; otherwise re-save just its state dict with '
                f'torch.save(state_dict, ...)') from e
    except Exception as e:  # noqa: BLE001 - any other failure means an unreadable file
        raise _corrupt(path, e) from e
    log(f'note: {path} pickles Python objects besides tensors; loading it with '
        f'weights_only=False (trusted input: this can run code from the file)')
    try:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise _corrupt(path, e) from e


def _corrupt(path, error, detail=None):
    first = (detail or (str(error).splitlines() or [''])[0])[:200]
    return ConversionError(
        f'cannot read {path}: torch.load failed ({type(error).__name__}: {first}); the file '
        f'is corrupt or truncated, or was not written by torch.save. Copy or export it again')
