"""Reading a checkpoint file with ``torch.load``, with one clear error per failure.

Weights-only first (``weights_only=True``): VISSL checkpoints, torchvision state dicts and
SwAV's released files load that way. Formats whose files pickle other Python objects
(``argparse.Namespace`` in SlotCon's ``main_pretrain.py`` checkpoints, ``args`` in many
MoCo forks) pass ``trusted_pickle=True``: they are then loaded with ``weights_only=False``,
which can run code from the file, and a note saying so is printed (and readers put it in
the report).

``convert`` reads a file once: it loads it here (to detect or check the format), then calls
the reader inside ``preloaded(path, loaded)``, where ``load_checkpoint`` returns the object
already in memory instead of reading the file again, with the same trust rule (a reader
without ``trusted_pickle`` gets the same refusal as from the file).
"""
import contextlib
import os.path as osp
import pickle
import re
from dataclasses import dataclass

import torch

from converters.errors import ConversionError


@dataclass
class Loaded:
    """A loaded checkpoint. ``trusted_detail``: None when it loaded weights-only; otherwise
    why weights-only loading failed (the class torch named), i.e. it needed trust."""
    obj: object
    trusted_detail: str = None


_PRELOADED = {}  # absolute path -> Loaded, only inside ``preloaded``


def _weights_only_detail(error):
    text = re.sub(r'\x1b\[[0-9;]*m', '', str(error))  # torch's message has terminal bold
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if 'WeightsUnpickler error' in line:
            return line.split('. ')[0]
    return lines[0] if lines else type(error).__name__


def _untrusted_refusal(path, fmt, detail):
    return ConversionError(
        f'{path} is not a plain tensor checkpoint ({detail}); the {fmt!r} reader loads '
        f'weights only. If it comes from another method, use that method\'s --src-format '
        f'(--src-format auto tells which); otherwise re-save just its state dict with '
        f'torch.save(state_dict, ...)')


def trusted_note(path, detail):
    """The report line for a file loaded with ``weights_only=False``."""
    return (f'{osp.basename(path)} pickles Python objects besides tensors ({detail}); loaded '
            f'with weights_only=False as trusted input (this can run code from the file: '
            f'convert only files whose origin you trust)')


def load(path, fmt, trusted_pickle=False, log=print):
    """``torch.load(path)`` on CPU -> ``Loaded``; ``fmt`` (the source format) is named in
    errors. Without ``trusted_pickle`` a file that needs ``weights_only=False`` is refused."""
    key = osp.abspath(path)
    if key in _PRELOADED:
        loaded = _PRELOADED[key]
        if loaded.trusted_detail and not trusted_pickle:
            raise _untrusted_refusal(path, fmt, loaded.trusted_detail)
        return loaded
    if not osp.exists(path):
        raise ConversionError(f'input checkpoint not found: {path} (check the path)')
    if osp.isdir(path):
        raise ConversionError(f'input checkpoint {path} is a directory; pass the checkpoint '
                              f'file inside it (e.g. model_final_checkpoint_phaseN.torch)')
    try:
        return Loaded(torch.load(path, map_location='cpu', weights_only=True))
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' not in str(e):
            raise _corrupt(path, e) from e
        if 'Unsupported global' not in str(e):  # not a class: damaged pickle data
            raise _corrupt(path, e, _weights_only_detail(e)) from e
        detail = _weights_only_detail(e)
        if not trusted_pickle:
            raise _untrusted_refusal(path, fmt, detail) from e
    except Exception as e:  # noqa: BLE001 - any other failure means an unreadable file
        raise _corrupt(path, e) from e
    log(f'note: {path} pickles Python objects besides tensors; loading it with '
        f'weights_only=False (trusted input: this can run code from the file)')
    try:
        return Loaded(torch.load(path, map_location='cpu', weights_only=False), detail)
    except Exception as e:  # noqa: BLE001
        raise _corrupt(path, e) from e


def load_checkpoint(path, fmt, trusted_pickle=False, log=print):
    """``torch.load(path)`` on CPU, the loaded object only (see ``load``)."""
    return load(path, fmt, trusted_pickle, log).obj


@contextlib.contextmanager
def preloaded(path, loaded):
    """Within the block, ``load(path, ...)`` returns ``loaded`` (a ``Loaded``)."""
    key = osp.abspath(path)
    _PRELOADED[key] = loaded
    try:
        yield loaded
    finally:
        _PRELOADED.pop(key, None)


def _corrupt(path, error, detail=None):
    first = (detail or (str(error).splitlines() or [''])[0])[:200]
    return ConversionError(
        f'cannot read {path}: torch.load failed ({type(error).__name__}: {first}); the file '
        f'is corrupt or truncated, or was not written by torch.save. Copy or export it again')
