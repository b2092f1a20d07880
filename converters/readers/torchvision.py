"""Reader ``torchvision``: a torchvision-named ResNet state dict.

Accepted layouts (loaded weights-only)::

    {'conv1.weight': tensor, ..., ['fc.weight', 'fc.bias']}      # torch.save(model.state_dict())
    {'state_dict': {...}, ...}  or  {'model': {...}, ...}         # common training wrappers

A leading ``module.`` (DataParallel / DDP) is stripped. Other top-level entries of a wrapper
(``optimizer``, ``epoch``, ...) are ignored and noted. ``fc.*`` is kept when present.
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError
from converters.loading import load_checkpoint
from converters.readers import register_reader
from converters.readers.common import require_tensors, show_keys, strip_prefix

WRAPPER_KEYS = ('state_dict', 'model')


@register_reader('torchvision')
def read_torchvision(path, log=print):
    ckpt = load_checkpoint(path, 'torchvision', log=log)
    if not isinstance(ckpt, dict):
        raise ConversionError(f'{path} holds a {type(ckpt).__name__}, not a state dict; save '
                              f'model.state_dict() rather than the model')
    notes, where = [], 'the checkpoint'
    for name in WRAPPER_KEYS:
        if isinstance(ckpt.get(name), dict):
            ignored = [k for k in ckpt if k != name]
            if ignored:
                notes.append(f'ignored top-level entries: {show_keys(ignored)}')
            ckpt, where = ckpt[name], f'checkpoint[{name!r}]'
            break
    hint = ('a VISSL checkpoint? use --src-format vissl' if 'classy_state_dict' in ckpt else
            'expected a plain state dict, or one under "state_dict" / "model"')
    require_tensors(ckpt, path, where, hint)
    state_dict = {strip_prefix(k, 'module.'): v for k, v in ckpt.items()}
    if any(k.startswith('module.') for k in ckpt):
        notes.append("stripped the 'module.' prefix")
    return CanonicalCheckpoint(state_dict, 'torchvision', path, notes=notes)
