"""Init type ``CheckedPretrained``: mmengine's ``Pretrained`` init that checks every key.

mmengine's ``init_cfg=dict(type='Pretrained', checkpoint=FILE)`` loads with
``strict=False`` and only *logs* the keys that do not fit, so a file whose names do not
match the module (a ``backbone.`` prefix too many, another depth, a typo'd converter)
leaves the module at its random initialisation and training goes on. ``CheckedPretrained``
takes the same arguments and raises :class:`CheckpointMismatchError` naming the file and
every missing, unexpected and shape-mismatched key, with what to do. densessl's configs
use it; ``mmseg_plugins.compat`` (fix 4) makes plain ``type='Pretrained'`` this class too.

Which tensors of the file are compared with ``module.state_dict()``:

- the file's ``'state_dict'`` (or the file itself when it has none), ``module.`` (DDP)
  prefixes removed, as mmengine reads it;
- ``prefix='decode_head.'``: only the keys under that prefix, with it stripped (mmengine's
  semantics), e.g. the head part of a ViCE file;
- ``prefix=None``: every key except those under another part of an mmseg segmentor
  (:data:`OTHER_PARTS`: ``decode_head.``, ``auxiliary_head.``, ``neck.``) that the module
  does not have; these are set aside with a log line (the ``decode_head.*`` of a ViCE file
  given to the backbone), never silently loaded or dropped.

``allow_missing`` / ``allow_unexpected``: key prefixes (after the prefix strip) that may be
missing from / extra in the file, e.g. ``allow_missing=('conv_seg.',)`` for a head whose
classifier is new; those keep their other initialisation. Everything else must match.

The file densessl's converter writes (``tools/convert_checkpoint.py ... --dst-format
mmseg``), the layout of MMSeg's own model converters and of SlotCon's
``convert_pretrain_to_mm.py``::

    {'state_dict': {'conv1.weight': tensor, ..., 'layer4.2.bn3.bias': tensor,
                    ['decode_head.<mmseg head name>': tensor, ...  (ViCE only)]},
     'meta': {...}}
"""
import os.path as osp
import re

import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS

NAME = 'CheckedPretrained'
PLACEHOLDER = 'PRETRAIN'  # the configs' checkpoint until --cfg-options sets it
OTHER_PARTS = ('decode_head.', 'auxiliary_head.', 'neck.')
OLD_PREFIX = 'backbone.'
CONVERT_ADVICE = ('make the file from a pretraining checkpoint with python '
                  'tools/convert_checkpoint.py IN OUT --src-format {vissl,torchvision,vice} '
                  '--dst-format mmseg')


class CheckpointMismatchError(RuntimeError):
    """A checkpoint that does not fit the module it initialises."""


def _is_local(path):
    return '://' not in str(path)


def read_state_dict(path, map_location='cpu', what='checkpoint', not_found_hint='',
                    require_state_dict=False):
    """The tensors of checkpoint ``path``: its ``'state_dict'`` (or, unless
    ``require_state_dict``, the file itself), with DDP's ``module.`` prefix removed. Local
    files are read with ``torch.load(weights_only=True)``; URLs / ``open-mmlab://`` names
    through mmengine's loader. ``what`` names the file in messages.

    Raises ``FileNotFoundError`` (a local file that does not exist; ``not_found_hint`` is
    appended) or :class:`CheckpointMismatchError` (unreadable, or no tensor dict)."""
    if _is_local(path):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} not found: {path}. {not_found_hint}'.strip())
        try:
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:
            message = str(e)
            found = re.search(r'Unsupported global: GLOBAL [\w.]+', message)
            cause = found.group(0) if found else ' '.join(message.split())[:300]
            raise CheckpointMismatchError(
                f'cannot read {what} {path} with torch.load(weights_only=True) '
                f'({type(e).__name__}: {cause}); a converted checkpoint holds only tensors '
                f'and plain meta: {CONVERT_ADVICE}') from e
    else:
        from mmengine.runner.checkpoint import _load_checkpoint
        checkpoint = _load_checkpoint(path, map_location=map_location)
    if require_state_dict:
        state_dict = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
    else:
        state_dict = checkpoint.get('state_dict', checkpoint) \
            if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointMismatchError(
            f'{path} is not a converted {what} (expected a dict with a "state_dict" of '
            f'tensors); {CONVERT_ADVICE}')
    return {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}


def select_keys(state_dict, prefix, module_keys):
    """``(selected, set_aside)``: the tensors meant for the module (``prefix`` stripped) and
    the keys of other segmentor parts left out (``prefix=None`` only; see module doc)."""
    if prefix:
        return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}, []
    own_parts = {part for part in OTHER_PARTS if any(k.startswith(part) for k in module_keys)}
    set_aside = sorted(k for k in state_dict
                       if k.startswith(OTHER_PARTS) and not k.startswith(tuple(own_parts)))
    aside = set(set_aside)
    return {k: v for k, v in state_dict.items() if k not in aside}, set_aside


def mismatches(expected, given, allow_missing=(), allow_unexpected=()):
    """``(missing, unexpected, shape_mismatched)`` key lists (sorted) of ``given`` against
    ``expected`` (both name -> tensor); keys under the allowed prefixes are not counted."""
    allow_missing, allow_unexpected = tuple(allow_missing), tuple(allow_unexpected)
    missing = sorted(k for k in set(expected) - set(given)
                     if not (allow_missing and k.startswith(allow_missing)))
    unexpected = sorted(k for k in set(given) - set(expected)
                        if not (allow_unexpected and k.startswith(allow_unexpected)))
    mismatched = sorted(f'{k}: checkpoint {tuple(given[k].shape)} vs model '
                        f'{tuple(expected[k].shape)}' for k in set(expected) & set(given)
                        if tuple(given[k].shape) != tuple(expected[k].shape))
    return missing, unexpected, mismatched


def _show(keys):
    return ', '.join(keys[:12]) + (f', ... ({len(keys)} in all)' if len(keys) > 12 else '')


def describe_mismatch(path, missing, unexpected, mismatched):
    """One line: the file and every kind of mismatch with (up to 12 of) its keys."""
    return (f'checkpoint {path} does not match the model: '
            f'{len(missing)} missing keys [{_show(missing)}]; '
            f'{len(unexpected)} unexpected keys [{_show(unexpected)}]; '
            f'{len(mismatched)} shape mismatches [{_show(mismatched)}]')


def old_prefix_hint(expected, given):
    """A sentence when ``given``'s keys carry the ``backbone.`` prefix that ``expected``'s
    lack (densessl's mmseg files before the fix; mmseg training checkpoints), else ''."""
    if given and all(k.startswith(OLD_PREFIX) for k in given) and not any(
            k.startswith(OLD_PREFIX) for k in expected):
        stripped = {k[len(OLD_PREFIX):] for k in given}
        if stripped & set(expected):
            return (f"The file's keys carry a '{OLD_PREFIX}' prefix (densessl's mmseg "
                    f"converter wrote that before it was fixed; a full mmseg training "
                    f"checkpoint has it too): convert the pretraining checkpoint again, or "
                    f"load this file with prefix='{OLD_PREFIX}' in the init_cfg. ")
    return ''


@WEIGHT_INITIALIZERS.register_module(name=NAME)
class CheckedPretrainedInit(PretrainedInit):
    """``init_cfg=dict(type='CheckedPretrained', checkpoint=FILE, prefix=None,
    map_location='cpu', allow_missing=(), allow_unexpected=())``: load ``FILE`` into the
    module after checking every key (module docstring). Raises
    :class:`CheckpointMismatchError` / ``FileNotFoundError``; loads nothing then."""

    def __init__(self, checkpoint, prefix=None, map_location='cpu', allow_missing=(),
                 allow_unexpected=()):
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        for name, value in (('allow_missing', allow_missing),
                            ('allow_unexpected', allow_unexpected)):
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise TypeError(f'{NAME}: {name} must be a list of key prefixes, got '
                                f'{value!r}')
        self.allow_missing = tuple(allow_missing)
        self.allow_unexpected = tuple(allow_unexpected)

    def __call__(self, module):
        where = f' (prefix {self.prefix!r})' if self.prefix else ''
        if not self.checkpoint:
            raise FileNotFoundError(
                f'{module.__class__.__name__}: init_cfg checkpoint is {self.checkpoint!r}: '
                f'set it, e.g. --cfg-options model.backbone.init_cfg.checkpoint=FILE. '
                f'{CONVERT_ADVICE}')
        state_dict = read_state_dict(
            self.checkpoint, self.map_location,
            not_found_hint=f'Set the init_cfg checkpoint of {module.__class__.__name__} (e.g. '
                           f'--cfg-options model.backbone.init_cfg.checkpoint=FILE); '
                           f'{CONVERT_ADVICE}')
        expected = module.state_dict()
        given, set_aside = select_keys(state_dict, self.prefix, expected)
        missing, unexpected, mismatched = mismatches(expected, given, self.allow_missing,
                                                     self.allow_unexpected)
        if missing or unexpected or mismatched:
            if self.prefix and not given:
                hint = (f'No key of the file starts with {self.prefix!r}. ')
            else:
                hint = old_prefix_hint(expected, given)
            raise CheckpointMismatchError(
                f'{NAME} init of {module.__class__.__name__}{where}: '
                f'{describe_mismatch(self.checkpoint, missing, unexpected, mismatched)}. '
                f'{hint}Nothing was loaded. To fix it, {CONVERT_ADVICE}; keys that may '
                f'legitimately differ go into the init_cfg\'s allow_missing / '
                f'allow_unexpected (lists of key prefixes).')
        loaded = {k: v for k, v in given.items() if k in expected}
        # strict: the keys allow_missing let through keep the module's own tensors
        module.load_state_dict({**expected, **loaded}, strict=True)
        print_log(f'{NAME}: loaded {len(loaded)} of {len(expected)} tensors of '
                  f'{module.__class__.__name__} from {self.checkpoint}{where}'
                  + (f'; kept their own init: {_show(sorted(set(expected) - set(loaded)))}'
                     if len(loaded) < len(expected) else ''), logger='current')
        if set_aside:
            parts = sorted({k.split('.', 1)[0] for k in set_aside})
            print_log(f'{NAME}: {len(set_aside)} keys of other model parts '
                      f'({", ".join(p + ".*" for p in parts)}) in {self.checkpoint} are not '
                      f'for {module.__class__.__name__}; that part loads them with its own '
                      f'init_cfg (prefix=\'{parts[0]}.\')', logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self):
        return f'{NAME}: load from {self.checkpoint}'
