"""Reader ``virb``: an encoder weight file of the original ViRB (allenai/ViRB), loaded
weights-only.

Accepted layouts::

    # what ViRB's scripts/*_to_virb.py write and its experiment lists name
    {'model.conv1.weight': tensor, ..., 'model.layer4.2.bn3.running_var': tensor,
     ['model.fc.weight', 'model.fc.bias']}
    # the same under 'state_dict', or with a DataParallel 'module.' in front

The ``model.`` prefix (and a ``module.`` before it) is removed, leaving torchvision names;
keys without the prefix are kept as they are (the writer's check then reports them).
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError
from converters.loading import load_checkpoint
from converters.readers import register_reader
from converters.readers.common import (MODULE, find_state_dict, require_tensors, show_keys,
                                       strip_prefix)

PREFIX = 'model.'
WRAPPERS = ('state_dict',)


def is_virb_key(key):
    """True for a ViRB weight file's key (``model.<torchvision name>``, ``module.`` ignored)."""
    return isinstance(key, str) and strip_prefix(key, MODULE).startswith(PREFIX)


@register_reader('virb')
def read_virb(path, log=print):
    obj = load_checkpoint(path, 'virb', log=log)
    state, where, other = find_state_dict(obj, WRAPPERS)
    if state is None:
        found = show_keys(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ConversionError(f'{path}: no ViRB weight file: expected a dict of tensors with '
                              f"'model.'-prefixed keys (found: {found})")
    require_tensors(state, path, where, "a ViRB weight file holds tensors only")
    state_dict, unprefixed = {}, []
    for key, value in state.items():
        bare = strip_prefix(key, MODULE)
        if bare.startswith(PREFIX):
            state_dict[bare[len(PREFIX):]] = value
        else:
            state_dict[bare] = value
            unprefixed.append(key)
    notes = [f"stripped the 'model.' prefix ({len(state_dict) - len(unprefixed)} tensors)"]
    if unprefixed:
        notes.append(f"{len(unprefixed)} keys without the 'model.' prefix, kept as they are: "
                     f'{show_keys(unprefixed, 4)}')
    if other:
        notes.append(f'ignored top-level entries: {show_keys(other)}')
    return CanonicalCheckpoint(state_dict, 'virb', path, notes=notes)
