"""``--src-format auto``: which reader fits a loaded checkpoint, told from its layout and keys.

``detect_format(obj) -> Detection``; the rules, in order (``module.`` ignored throughout):

1. A VISSL checkpoint (``classy_state_dict``, ``{'trunk': ...}``, ``{'model_state_dict':
   ...}`` or flat ``trunk._feature_blocks.*`` keys):
   trunk keys ``_feature_blocks.backbone.*`` -> **vice**;
   ``classy_state_dict['loss']`` holding ``momentum_teacher.trunk._feature_blocks.*`` ->
   **slotcon** (the ``vissl`` reader also fits: it reads the student trunk);
   otherwise -> **vissl**.
2. Otherwise the state dict (``checkpoint['state_dict']``, ``['model']`` or the file itself):
   ``encoder_q.*`` / ``encoder_k.*`` beside SlotCon's ``projector_q/k``, ``grouping_q/k``,
   ``predictor_slot``, ``center``, or ``encoder_k.*`` with neither a queue nor an
   ``encoder_q.fc`` head (a backbone-only SlotCon file) -> **slotcon**;
   other ``encoder_q.*`` / ``encoder_k.*`` (with ``queue``, ``encoder_q.fc.*``) or MoCo v3's
   ``base_encoder.*`` -> **moco**;
   torchvision ResNet names at the top (``conv1``, ``bn1``, ``layerN``, ``fc``) with
   ``projection_head.*`` / ``prototypes*`` -> **swav**, without -> **torchvision**;
   torchvision ResNet names behind ``model.`` (``model.conv1.weight``) -> **virb** (the
   original ViRB's encoder files); behind ``encoder.`` (``encoder.conv1.weight``) beside
   SimSiam's ``predictor.*`` or its MLP projector ``encoder.fc.N.*`` -> **simsiam** (a
   bare ``encoder.*`` ResNet is no known format: other methods use that prefix too).
3. Anything else: no format (``Detection.format`` is None).

``Detection.candidates`` lists every format whose reader reads the file as what it is (best
first); ``convert`` refuses a given ``--src-format`` outside it. ``evidence`` says which keys
decided; ``layout`` what the keys look like (for error messages).
"""
import re
from dataclasses import dataclass, field

from converters.readers.common import (MODULE, find_state_dict, group_keys, show_keys,
                                       strip_prefix)
from converters.readers.slotcon import VISSL_TEACHER, vissl_teacher_keys
from converters.readers.swav import is_swav_head

VISSL_TRUNK = '_feature_blocks.'
SLOTCON_HEADS = ('projector_q.', 'projector_k.', 'grouping_q.', 'grouping_k.',
                 'predictor_slot.')
_RESNET_KEY = re.compile(r'^(conv1|bn1|layer[1-4]|fc)\.')
_SIMSIAM_PROJECTOR = re.compile(r'^encoder\.fc\.\d+\.')  # its fc is an nn.Sequential


@dataclass
class Detection:
    format: str = None
    candidates: list = field(default_factory=list)
    evidence: str = ''
    layout: str = ''


def _vissl_trunk(obj):
    """(trunk dict, where) of a VISSL checkpoint, or (None, None) when it is not one."""
    csd = obj.get('classy_state_dict')
    if isinstance(csd, dict):
        node = csd
        for key in ('base_model', 'model', 'trunk'):
            node = node.get(key) if isinstance(node, dict) else None
        where = "checkpoint['classy_state_dict']['base_model']['model']['trunk']"
        return (node if isinstance(node, dict) else {}), where
    for name in ('trunk', 'model_state_dict'):
        if isinstance(obj.get(name), dict):
            return obj[name], f'checkpoint[{name!r}]'
    flat = {k: v for k, v in obj.items() if isinstance(k, str)
            and k.startswith(('trunk.' + VISSL_TRUNK, VISSL_TRUNK))}
    return (flat, 'the checkpoint') if flat else (None, None)


def _detect_vissl(obj, trunk, where):
    bare = [strip_prefix(strip_prefix(strip_prefix(k, MODULE), 'trunk.'), VISSL_TRUNK)
            for k in trunk]
    layout = f'a VISSL checkpoint, trunk at {where}: {group_keys(trunk) or "empty"}'
    if any(k.startswith('backbone.') for k in bare):
        return Detection('vice', ['vice'], 'VISSL trunk keys _feature_blocks.backbone.* (with '
                         'aspp / decoder): ViCE\'s deeplabv3plus trunk', layout)
    csd = obj.get('classy_state_dict')
    loss = csd.get('loss') if isinstance(csd, dict) else None
    teacher = vissl_teacher_keys(loss)
    if teacher:
        layout += f"; checkpoint['classy_state_dict']['loss']: {group_keys(loss)}"
        return Detection('slotcon', ['slotcon', 'vissl'],
                         f"VISSL checkpoint whose classy_state_dict['loss'] holds "
                         f'{VISSL_TEACHER}* ({len(teacher)} tensors): densessl\'s VISSL '
                         f'SlotCon (teacher + student)', layout)
    return Detection('vissl', ['vissl'], f'VISSL checkpoint, trunk keys {VISSL_TRUNK}*', layout)


def _detect_state_dict(state, where, other):
    bare = [strip_prefix(k, MODULE) for k in state if isinstance(k, str)]

    def has(*prefixes):
        return any(k.startswith(prefixes) for k in bare)

    layout = f'{where}: {group_keys(state)}'
    if other:
        layout += f'; other entries: {show_keys(other)}'
    slotcon_heads = has(*SLOTCON_HEADS) or 'center' in bare
    moco_marks = has('encoder_q.fc.', 'encoder_k.fc.') or 'queue' in bare
    if has('encoder_q.', 'encoder_k.'):
        if slotcon_heads or (has('encoder_k.') and not moco_marks):
            what = ('beside SlotCon\'s projector / grouping / predictor_slot keys'
                    if slotcon_heads else 'without a queue or fc head (backbone-only)')
            return Detection('slotcon', ['slotcon'], f'{where} holds encoder_k.* / encoder_q.* '
                             f'{what}: a SlotCon checkpoint', layout)
        return Detection('moco', ['moco'], f'{where} holds encoder_q.* with '
                         f'{"a queue / fc head" if moco_marks else "no SlotCon heads"}: '
                         f'a MoCo v1/v2 checkpoint', layout)
    if has('base_encoder.'):
        return Detection('moco', ['moco'], f'{where} holds base_encoder.*: a MoCo v3 '
                         f'checkpoint', layout)
    if any(_RESNET_KEY.match(k) for k in bare):
        if any(is_swav_head(k) for k in bare):
            return Detection('swav', ['swav'], f'{where} holds torchvision ResNet names with '
                             f'projection_head / prototypes: a SwAV model', layout)
        return Detection('torchvision', ['torchvision'], f'{where} holds torchvision ResNet '
                         f'names (conv1, bn1, layer1-4[, fc])', layout)
    if any(k.startswith('model.') and _RESNET_KEY.match(k[len('model.'):]) for k in bare):
        return Detection('virb', ['virb'], f'{where} holds torchvision ResNet names behind '
                         f"'model.': an encoder file of the original ViRB", layout)
    if (any(k.startswith('encoder.') and _RESNET_KEY.match(k[len('encoder.'):]) for k in bare)
            and (has('predictor.') or any(_SIMSIAM_PROJECTOR.match(k) for k in bare))):
        marks = 'a predictor.*' if has('predictor.') else 'an MLP projector encoder.fc.N.*'
        return Detection('simsiam', ['simsiam'], f'{where} holds torchvision ResNet names '
                         f"behind 'encoder.' with {marks}: a SimSiam checkpoint", layout)
    return Detection(None, [], f'{where} holds no key of a known format', layout)


def detect_format(obj):
    """The ``Detection`` for a loaded checkpoint object (see the module docstring)."""
    if not isinstance(obj, dict):
        return Detection(None, [], 'not a dict', f'a {type(obj).__name__}, not a dict')
    trunk, where = _vissl_trunk(obj)
    if trunk is not None:
        return _detect_vissl(obj, trunk, where)
    state, where, other = find_state_dict(obj, ('state_dict', 'model'))
    if state is None:
        return Detection(None, [], 'no state dict found',
                         f'top-level entries {show_keys(obj)}, none a state dict')
    return _detect_state_dict(state, where, other)
