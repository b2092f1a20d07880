"""Reader ``vissl``: a VISSL checkpoint of a ResNet trunk (VISSL's ``resnet`` or densessl's
``torchvision_resnet``), loaded weights-only.

Accepted layouts::

    # a training checkpoint (model_phaseN.torch, model_final_checkpoint_phaseN.torch)
    {'classy_state_dict': {'base_model': {'model': {'trunk': {...}, 'heads': {...}}, ...},
                           'optimizer': ..., ...},
     'type': 'consolidated', 'phase_idx': ..., ...}
    # exported / consolidated model files
    {'trunk': {...}, ['heads': {...}]}
    {'model_state_dict': {...trunk...}}
    {'trunk._feature_blocks.conv1.weight': tensor, ..., 'heads.0.clf.0.weight': tensor}

Trunk keys are ``_feature_blocks.<torchvision name>`` (``_feature_blocks.layer1.0.conv1.weight``);
the prefix (and a ``module.`` before it) is removed. Heads are dropped and reported as
``heads.<key>``; the training state (optimizer, loss, meters) is ignored. Sharded (FSDP)
checkpoints must be consolidated first (VISSL's ``extra_scripts/convert_sharded_checkpoint.py``).
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError
from converters.loading import load_checkpoint
from converters.readers import register_reader
from converters.readers.common import require_tensors, show_keys, strip_prefix

TRUNK_PREFIX = '_feature_blocks.'
NESTING = ('classy_state_dict', 'base_model', 'model', 'trunk')


def _nested_path(keys):
    return 'checkpoint' + ''.join(f'[{k!r}]' for k in keys)


def _training_checkpoint(ckpt, path):
    node = ckpt
    for depth, key in enumerate(NESTING):
        if not isinstance(node, dict) or key not in node:
            found = show_keys(node) if isinstance(node, dict) else type(node).__name__
            raise ConversionError(
                f'{path}: {_nested_path(NESTING[:depth])} has no {key!r} (found: {found}). A '
                f'VISSL training checkpoint holds the trunk at {_nested_path(NESTING)}; is '
                f'this file a complete VISSL checkpoint? For a plain state dict use '
                f'--src-format torchvision')
        parent, node = node, node[key]
    return node, parent.get('heads', {})


def _flat(ckpt):
    trunk, heads, other = {}, {}, []
    for key, value in ckpt.items():
        if key.startswith('trunk.'):
            trunk[key[len('trunk.'):]] = value
        elif key.startswith(TRUNK_PREFIX):
            trunk[key] = value
        elif key.startswith('heads.'):
            heads[key[len('heads.'):]] = value
        else:
            other.append(key)
    return trunk, heads, other


def _heads_keys(heads):
    if isinstance(heads, (list, tuple)):  # FSDP heads: one state dict per head
        return [f'heads.{i}.{k}' for i, head in enumerate(heads) for k in head]
    return [f'heads.{k}' for k in heads] if isinstance(heads, dict) else []


@register_reader('vissl')
def read_vissl(path, log=print):
    ckpt = load_checkpoint(path, 'vissl', log=log)
    if not isinstance(ckpt, dict):
        raise ConversionError(f'{path} holds a {type(ckpt).__name__}, not a VISSL checkpoint '
                              f'dict')
    if ckpt.get('type') in ('sharded', 'sliced'):
        raise ConversionError(
            f'{path} is a {ckpt["type"]} VISSL checkpoint; consolidate it first: python -m '
            f'extra_scripts.convert_sharded_checkpoint --input {path} --output OUT -t consolidated')
    notes, other = [], []
    if 'classy_state_dict' in ckpt:
        trunk, heads = _training_checkpoint(ckpt, path)
        where = _nested_path(NESTING)
        notes.append('VISSL training checkpoint; training state (optimizer, loss, meters) '
                     'ignored')
    elif isinstance(ckpt.get('trunk'), dict):
        trunk, heads, where = ckpt['trunk'], ckpt.get('heads', {}), "checkpoint['trunk']"
        other = [k for k in ckpt if k not in ('trunk', 'heads')]
    elif isinstance(ckpt.get('model_state_dict'), dict):
        trunk, heads, where = ckpt['model_state_dict'], {}, "checkpoint['model_state_dict']"
        other = [k for k in ckpt if k != 'model_state_dict']
    elif any(k.startswith(('trunk.', TRUNK_PREFIX)) for k in ckpt):
        trunk, heads, other = _flat(ckpt)
        where = 'checkpoint'
    else:
        raise ConversionError(
            f'{path} is not a VISSL checkpoint: no {_nested_path(NESTING)}, no "trunk" or '
            f'"model_state_dict" entry and no "trunk._feature_blocks.*" keys (found: '
            f'{show_keys(ckpt)}). For a plain torchvision state dict use --src-format torchvision')
    if other:
        notes.append(f'ignored entries outside trunk/heads: {show_keys(other)}')
    require_tensors(trunk, path, where, 'a VISSL trunk is a state dict of tensors')
    state_dict = {strip_prefix(strip_prefix(k, 'module.'), TRUNK_PREFIX): v
                  for k, v in trunk.items()}
    without_prefix = [k for k in trunk if not strip_prefix(k, 'module.').startswith(TRUNK_PREFIX)]
    if without_prefix:
        notes.append(f'{len(without_prefix)} trunk keys without the {TRUNK_PREFIX!r} prefix, '
                     f'kept as they are: {show_keys(without_prefix, 4)}')
    return CanonicalCheckpoint(state_dict, 'vissl', path, dropped_keys=_heads_keys(heads),
                               notes=notes)
