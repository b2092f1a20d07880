"""Reader ``moco``: the query encoder of a MoCo checkpoint (facebookresearch/moco
``main_moco.py``, and MoCo v3's ``base_encoder``).

Accepted layouts::

    # MoCo v1 / v2 (checkpoint_NNNN.pth.tar, moco_v2_800ep_pretrain.pth.tar)
    {'epoch': 800, 'arch': 'resnet50', 'optimizer': {...},
     'state_dict': {'module.encoder_q.conv1.weight': ..., ...,
                    'module.encoder_q.fc.weight' (v1) | 'module.encoder_q.fc.0/2.*' (v2 mlp),
                    'module.encoder_k.*', 'module.queue', 'module.queue_ptr'}}
    # MoCo v3 ResNet: 'module.base_encoder.*' (its fc.* is the projector),
    #                 'module.momentum_encoder.*', 'module.predictor.*'
    # also the state dict alone, under 'model', or without 'module.'

The query encoder's torchvision-named tensors become the canonical ResNet. Its ``fc.*`` is
MoCo's projection head (128-d, or an MLP), not an ImageNet classifier: dropped like the key
encoder, the queue and the predictor, and reported. Forks often pickle their ``args``
(``argparse.Namespace``), so files that need it are loaded with ``weights_only=False``
(trusted input, said in the report); the original files load weights-only.
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError
from converters.loading import load, trusted_note
from converters.readers import register_reader
from converters.readers.common import (MODULE, find_state_dict, group_keys, require_tensors,
                                       show_keys, strip_prefix, take_encoder)

WRAPPERS = ('state_dict', 'model')
QUERY_PREFIXES = ('encoder_q.', 'base_encoder.')  # v1/v2, v3


def query_prefix(keys):
    """The MoCo query-encoder prefix present among ``keys`` (``module.`` stripped), or None."""
    bare = [strip_prefix(k, MODULE) for k in keys]
    return next((p for p in QUERY_PREFIXES if any(k.startswith(p) for k in bare)), None)


@register_reader('moco', trusted_pickle=True)
def read_moco(path, log=print):
    loaded = load(path, 'moco', trusted_pickle=True, log=log)
    state, where, other = find_state_dict(loaded.obj, WRAPPERS)
    if state is None:
        found = show_keys(loaded.obj) if isinstance(loaded.obj, dict) else type(loaded.obj).__name__
        raise ConversionError(
            f'{path}: no MoCo state dict: expected checkpoint["state_dict"] (main_moco.py) or '
            f'a dict of tensors (found: {found})')
    require_tensors(state, path, where, 'a MoCo state dict holds tensors only')
    prefix = query_prefix(state)
    if prefix is None:
        raise ConversionError(
            f'{path}: no MoCo query encoder in {where}: no (module.)encoder_q.* (MoCo v1/v2) '
            f'or (module.)base_encoder.* (v3) keys (found: {group_keys(state)}). '
            f'--src-format auto tells which format the keys fit')
    head = prefix + 'fc.'
    state_dict, dropped = take_encoder(state, prefix)
    shown = (MODULE if any(k.startswith(MODULE) for k in state) else '') + prefix
    notes = [f'encoder: the MoCo query encoder ({shown}*, {len(state_dict)} tensors)']
    if any(strip_prefix(k, MODULE).startswith(head) for k in dropped):
        notes.append(f'{shown}fc.* dropped: MoCo\'s projection head, not a classifier')
    if loaded.trusted_detail:
        notes.append(trusted_note(path, loaded.trusted_detail))
    if isinstance(loaded.obj.get('arch'), str):
        notes.append(f"the checkpoint names its arch {loaded.obj['arch']!r}")
    if other:
        notes.append(f'ignored top-level entries: {show_keys(other)}')
    return CanonicalCheckpoint(state_dict, 'moco', path, dropped_keys=dropped, notes=notes)
