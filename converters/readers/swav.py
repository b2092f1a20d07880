"""Reader ``swav``: a SwAV ResNet (facebookresearch/swav), loaded weights-only.

Accepted layouts::

    # released files (swav_800ep_pretrain.pth.tar): the DDP state dict itself
    {'module.conv1.weight': ..., 'module.layer4.2.bn3.running_var': ...,
     'module.projection_head.0.weight', 'module.projection_head.1.*' (BN), ...,
     'module.prototypes.weight'}          # or prototypes0/1/... for multiple heads
    # training checkpoints (checkpoint.pth.tar): {'epoch', 'state_dict': {...}, 'optimizer'}

``module.`` is stripped; SwAV's ResNet has torchvision's names (no ``fc``). The projection
head and the prototypes are dropped and reported. Widened SwAV models (resnet50w2/w4/w5)
have no torchvision arch: their shapes are refused by the writer's check.
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError
from converters.loading import load_checkpoint
from converters.readers import register_reader
from converters.readers.common import (MODULE, find_state_dict, require_tensors, show_keys,
                                       strip_prefix)

WRAPPERS = ('state_dict',)
HEAD_PREFIXES = ('projection_head.', 'prototypes')


def is_swav_head(key):
    """True for SwAV's projection head / prototypes keys (``module.`` stripped)."""
    return key.startswith(HEAD_PREFIXES)


@register_reader('swav')
def read_swav(path, log=print):
    obj = load_checkpoint(path, 'swav', log=log)
    state, where, other = find_state_dict(obj, WRAPPERS)
    if state is None:
        found = show_keys(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ConversionError(
            f'{path}: no SwAV state dict: expected a dict of tensors (the released '
            f'files) or checkpoint["state_dict"] (training checkpoints) (found: {found})')
    require_tensors(state, path, where, 'a SwAV state dict holds tensors only')
    state_dict, dropped = {}, []
    for key, value in state.items():
        bare = strip_prefix(key, MODULE)
        if is_swav_head(bare):
            dropped.append(key)
        else:
            state_dict[bare] = value
    notes = []
    if any(k.startswith(MODULE) for k in state):
        notes.append("stripped the 'module.' prefix")
    if not dropped:
        notes.append('no SwAV projection head / prototypes in the file')
    if other:
        notes.append(f'ignored top-level entries: {show_keys(other)}')
    return CanonicalCheckpoint(state_dict, 'swav', path, dropped_keys=dropped, notes=notes)
