"""Reader ``slotcon``: one encoder of a SlotCon checkpoint, the teacher by default.

SlotCon trains a student encoder and an EMA teacher; its transfer scripts
(``transfer/detection/convert_pretrain_to_d2.py``, ``transfer/segmentation/
convert_pretrain_to_mm.py``) export the **teacher**, and so does this reader unless
``use_student=True`` (``--use-student``). Two layouts:

(a) SlotCon's own ``main_pretrain.py`` checkpoints (``ckpt_epoch_N.pth``, ``current.pth``)::

        {'args': argparse.Namespace(arch='resnet50', ...),   # needs weights_only=False
         'model': {'module.encoder_q.<resnet>'  (student), 'module.encoder_k.<resnet>' (teacher),
                   'module.projector_q/k.mlp.*', 'module.grouping_q/k.slot_embed.weight',
                   'module.predictor_slot.mlp.*', 'module.center'},
         'optimizer': ..., 'scheduler': ..., 'scaler': ..., 'epoch': 800}

    ``'state_dict'`` instead of ``'model'``, no ``module.``, and backbone-only files (a
    dict of ``encoder_k.*`` tensors alone) are read too. The encoders have no ``fc``.
    ``args`` pickles an ``argparse.Namespace``: the file is loaded with
    ``weights_only=False`` as trusted input, and the report says so.

(b) densessl's VISSL SlotCon checkpoints (``model_final_checkpoint_phaseN.torch``)::

        checkpoint['classy_state_dict']['base_model']['model']['trunk']
            {'_feature_blocks.<resnet>': ...}                    (student)
        checkpoint['classy_state_dict']['loss']
            {'momentum_teacher.trunk._feature_blocks.<resnet>': ..., (teacher)
             'momentum_teacher.heads.*', ...}                     (dropped)

Everything but the chosen encoder is dropped and reported by group. A checkpoint without
the teacher is one error that names the file and points to ``--use-student`` (or to another
format).

``read_slotcon_branch(path, use_student=False)`` also returns the branch's projector and
grouping (for ``tools/viz_slots.py``'s evaluation model).
"""
from converters.canonical import CanonicalCheckpoint
from converters.errors import ConversionError
from converters.loading import load, preloaded, trusted_note
from converters.readers import register_reader
from converters.readers.common import (MODULE, find_state_dict, group_keys, require_tensors,
                                       show_keys, strip_prefix)

WRAPPERS = ('model', 'state_dict')
ENCODERS = {False: ('teacher', 'encoder_k.'), True: ('student', 'encoder_q.')}
VISSL_TRUNK = '_feature_blocks.'
VISSL_TEACHER = 'momentum_teacher.trunk._feature_blocks.'
VISSL_STUDENT_AT = ('classy_state_dict', 'base_model', 'model', 'trunk')
VISSL_TEACHER_AT = ('classy_state_dict', 'loss')


def _at(keys):
    return 'checkpoint' + ''.join(f'[{k!r}]' for k in keys)


def vissl_teacher_keys(loss_state):
    """Keys of a VISSL loss state that belong to the SlotCon teacher trunk."""
    if not isinstance(loss_state, dict):
        return []
    return [k for k in loss_state
            if isinstance(k, str) and strip_prefix(k, MODULE).startswith(VISSL_TEACHER)]


def _nested(obj, keys, path):
    node = obj
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            found = show_keys(node) if isinstance(node, dict) else type(node).__name__
            raise ConversionError(
                f'{path}: {_at(keys[:depth])} has no {key!r} (found: {found}); a VISSL SlotCon '
                f'checkpoint holds the student trunk at {_at(VISSL_STUDENT_AT)} and the '
                f'teacher in {_at(VISSL_TEACHER_AT)}')
        node = node[key]
    return node


def _read_vissl(obj, path, use_student):
    trunk = _nested(obj, VISSL_STUDENT_AT, path)
    loss = obj['classy_state_dict'].get('loss')
    loss = loss if isinstance(loss, dict) else {}
    heads = obj['classy_state_dict']['base_model']['model'].get('heads')
    dropped = [f'heads.{k}' for k in heads] if isinstance(heads, dict) else []
    teacher = vissl_teacher_keys(loss)
    if use_student:
        require_tensors(trunk, path, _at(VISSL_STUDENT_AT), 'a VISSL trunk holds tensors')
        state_dict = {strip_prefix(strip_prefix(k, MODULE), VISSL_TRUNK): v
                      for k, v in trunk.items()}
        dropped += [f'loss.{k}' for k in loss]
        encoder = f'the student ({_at(VISSL_STUDENT_AT)}, {len(state_dict)} tensors)'
    else:
        if not teacher:
            raise ConversionError(
                f'{path}: no SlotCon teacher in this VISSL checkpoint: '
                f'{_at(VISSL_TEACHER_AT)} has no {VISSL_TEACHER}* keys (found: '
                f'{group_keys(loss) if loss else "nothing"}). To convert the student trunk '
                f'instead pass --use-student; if this is not a SlotCon checkpoint (another '
                f'VISSL method), use --src-format vissl')
        chosen = set(teacher)
        teacher_state = {k: loss[k] for k in teacher}
        require_tensors(teacher_state, path, _at(VISSL_TEACHER_AT), 'the teacher is tensors')
        state_dict = {strip_prefix(k, MODULE)[len(VISSL_TEACHER):]: v
                      for k, v in teacher_state.items()}
        dropped += [f'loss.{k}' for k in loss if k not in chosen]
        dropped += [f'trunk.{k}' for k in trunk] if isinstance(trunk, dict) else []
        encoder = (f'the teacher ({_at(VISSL_TEACHER_AT)} {VISSL_TEACHER}*, '
                   f'{len(state_dict)} tensors)')
    notes = [f'encoder: {encoder}',
             "densessl VISSL SlotCon checkpoint; training state (optimizer, meters) ignored"]
    return state_dict, dropped, notes


def _read_original(obj, path, use_student):
    state, where, other = find_state_dict(obj, WRAPPERS)
    if state is None:
        found = show_keys(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ConversionError(
            f'{path}: no SlotCon state dict: expected checkpoint["model"] (SlotCon\'s '
            f'main_pretrain.py), checkpoint["state_dict"], a dict of encoder tensors '
            f'(backbone-only file) or a VISSL checkpoint (found: {found})')
    require_tensors(state, path, where, 'a SlotCon model state dict holds tensors only')
    role, prefix = ENCODERS[use_student]
    state_dict, dropped = {}, []
    for key, value in state.items():
        bare = strip_prefix(key, MODULE)
        if bare.startswith(prefix):
            state_dict[bare[len(prefix):]] = value
        else:
            dropped.append(key)
    if not state_dict:
        if use_student:
            advice = ('backbone-only SlotCon files hold the teacher only: drop --use-student '
                      'to convert it')
        else:
            advice = ('to convert the student encoder (encoder_q.*) instead pass '
                      '--use-student; if this is not a SlotCon checkpoint, --src-format auto '
                      'tells which format the keys fit')
        raise ConversionError(
            f'{path}: no SlotCon {role} encoder ((module.){prefix}* keys) in {where} (found: '
            f'{group_keys(state)}); {advice}')
    shown = (MODULE if any(k.startswith(MODULE + prefix) for k in state) else '') + prefix
    notes = [f'encoder: the {role} ({shown}* in {where}, {len(state_dict)} tensors)']
    args = obj.get('args') if isinstance(obj, dict) else None
    if getattr(args, 'arch', None):
        notes.append(f'the checkpoint\'s args name its arch {args.arch!r}')
    if other:
        notes.append(f'ignored top-level entries: {show_keys(other)}')
    return state_dict, dropped, notes


@register_reader('slotcon', trusted_pickle=True, options=('use_student',))
def read_slotcon(path, log=print, use_student=False):
    loaded = load(path, 'slotcon', trusted_pickle=True, log=log)
    obj = loaded.obj
    if isinstance(obj, dict) and 'classy_state_dict' in obj:
        state_dict, dropped, notes = _read_vissl(obj, path, use_student)
    else:
        state_dict, dropped, notes = _read_original(obj, path, use_student)
    if loaded.trusted_detail:
        notes.append(trusted_note(path, loaded.trusted_detail))
    return CanonicalCheckpoint(state_dict, 'slotcon', path, dropped_keys=dropped, notes=notes)


HEAD_PREFIXES = {False: 'momentum_teacher.heads.0.', True: '0.'}  # VISSL: teacher, student
PREDICTOR = 'predictor.'


def _vissl_head(obj, use_student):
    if use_student:
        source = obj['classy_state_dict']['base_model']['model'].get('heads')
    else:
        source = obj['classy_state_dict'].get('loss')
    prefix = HEAD_PREFIXES[use_student]
    head = {}
    for key, value in (source or {}).items():
        bare = strip_prefix(key, MODULE)
        if bare.startswith(prefix) and not bare[len(prefix):].startswith(PREDICTOR):
            head[bare[len(prefix):]] = value
    return head


def _original_head(obj, use_student):
    side = 'q' if use_student else 'k'
    state, _, _ = find_state_dict(obj, WRAPPERS)
    head = {}
    for key, value in (state or {}).items():
        bare = strip_prefix(key, MODULE)
        if bare.startswith(f'projector_{side}.'):
            head['projector.' + bare[len(f'projector_{side}.'):]] = value
        elif bare == f'grouping_{side}.slot_embed.weight':
            head['grouping.prototypes.weight'] = value
    return head


def read_slotcon_branch(path, use_student=False, log=print):
    """One SlotCon branch as its evaluation model holds it (``SlotConEval``: encoder,
    projector, grouping), the teacher unless ``use_student``.

    Returns ``(resnet_state, head_state)``: the encoder in torchvision names (as
    ``read_slotcon`` gives it) and the head in ``densessl.slotcon`` names
    (``projector.mlp.{0,1,3,4,6}.*``, ``grouping.prototypes.weight``; SlotCon's
    ``projector_k.mlp.*`` / ``grouping_k.slot_embed.weight``, or VISSL's
    ``momentum_teacher.heads.0.*`` without the predictor). Keys are not checked here (the
    model built from them checks every one). Raises ``ConversionError`` when the file has no
    such head (backbone-only files).
    """
    loaded = load(path, 'slotcon', trusted_pickle=True, log=log)
    with preloaded(path, loaded):
        ckpt = read_slotcon(path, log=log, use_student=use_student)
    vissl = isinstance(loaded.obj, dict) and 'classy_state_dict' in loaded.obj
    head = (_vissl_head if vissl else _original_head)(loaded.obj, use_student)
    if not head:
        role, _ = ENCODERS[use_student]
        where = (f'{HEAD_PREFIXES[use_student]}* in the VISSL checkpoint' if vissl else
                 f'projector_{"q" if use_student else "k"}.* / grouping_* keys')
        raise ConversionError(
            f'{path}: no SlotCon {role} projector / grouping ({where}); backbone-only files '
            f'hold the encoder alone: use a full SlotCon checkpoint')
    return ckpt.state_dict, head
