"""Reader ``simsiam``: the encoder's ResNet of a SimSiam checkpoint (facebookresearch/simsiam
``main_simsiam.py``), loaded weights-only.

Accepted layout::

    # checkpoint_NNNN.pth.tar and the released checkpoint_0099.pth.tar
    {'epoch': 100, 'arch': 'resnet50', 'optimizer': {...},
     'state_dict': {'module.encoder.conv1.weight': ..., ...,
                    'module.encoder.layer4.2.bn3.running_var': ...,
                    'module.encoder.fc.0.weight', 'module.encoder.fc.1.*' (BN), ...,
                    'module.encoder.fc.6.weight', 'module.encoder.fc.6.bias',
                    'module.encoder.fc.7.*' (BN without affine),      # the projector
                    'module.predictor.0.weight', 'module.predictor.1.*', 'module.predictor.3.*'}}
    # also the state dict alone, under 'model', or without 'module.'

SimSiam replaces the ResNet's ``fc`` by its 3-layer projector, so ``encoder.fc.*`` is not
an ImageNet classifier: it is dropped with the predictor and reported, as the original
ViRB's ``simsiam_to_virb.py`` keeps ``module.encoder.*`` only (that script keeps the
projector too; a ViRB encoder never reads it).
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError
from converters.loading import load_checkpoint
from converters.readers import register_reader
from converters.readers.common import (MODULE, find_state_dict, group_keys, require_tensors,
                                       show_keys, strip_prefix, take_encoder)

WRAPPERS = ('state_dict', 'model')
ENCODER = 'encoder.'
PROJECTOR = ENCODER + 'fc.'
PREDICTOR = 'predictor.'


@register_reader('simsiam')
def read_simsiam(path, log=print):
    obj = load_checkpoint(path, 'simsiam', log=log)
    state, where, other = find_state_dict(obj, WRAPPERS)
    if state is None:
        found = show_keys(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ConversionError(
            f'{path}: no SimSiam state dict: expected checkpoint["state_dict"] '
            f'(main_simsiam.py) or a dict of tensors (found: {found})')
    require_tensors(state, path, where, 'a SimSiam state dict holds tensors only')
    state_dict, dropped = take_encoder(state, ENCODER)
    if not state_dict:
        raise ConversionError(
            f'{path}: no SimSiam encoder in {where}: no (module.)encoder.* keys (found: '
            f'{group_keys(state)}). --src-format auto tells which format the keys fit')
    shown = (MODULE if any(k.startswith(MODULE) for k in state) else '') + ENCODER
    notes = [f'encoder: the SimSiam encoder ({shown}*, {len(state_dict)} tensors)']
    bare_dropped = [strip_prefix(k, MODULE) for k in dropped]
    if any(k.startswith(PROJECTOR) for k in bare_dropped):
        notes.append(f'{shown}fc.* dropped: SimSiam\'s projector, not a classifier')
    if any(k.startswith(PREDICTOR) for k in bare_dropped):
        notes.append('predictor.* dropped: SimSiam\'s predictor')
    if isinstance(obj, dict) and isinstance(obj.get('arch'), str):
        notes.append(f"the checkpoint names its arch {obj['arch']!r}")
    if other:
        notes.append(f'ignored top-level entries: {show_keys(other)}')
    return CanonicalCheckpoint(state_dict, 'simsiam', path, dropped_keys=dropped, notes=notes)
