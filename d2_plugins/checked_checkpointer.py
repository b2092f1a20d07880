"""``CheckedDetectionCheckpointer``: detectron2's checkpointer, failing where it only logs.

detectron2's ``DetectionCheckpointer`` (through fvcore's ``Checkpointer``) loads whatever
matches and logs the rest: a ``MODEL.WEIGHTS`` file with another architecture's shapes, other
names, or half its keys gives a model that is silently partly random. Here a load fails with
one error that names the file, the model keys that got nothing (with the file's shape where
only the shape differed) and what to do. What must come from the file:

* a pretrained backbone (a detectron2 pickle from ``tools/convert_checkpoint.py --dst-format
  d2``, detectron2's model zoo ``.pkl``, any file read with matching heuristics, or a state
  dict without a training ``iteration``): every ResNet key of the model (:func:`resnet_keys`,
  the stem and ``res2..res5`` blocks, wherever the model keeps them: ``backbone.bottom_up.``
  in FPN models, ``backbone.`` and ``roi_heads.res5.`` in C4 models). New layers (FPN, RPN,
  heads, ``Res5ROIHeadsExtraNorm``'s extra norm) start from their own init, as intended.
* a detectron2 training checkpoint (it holds ``iteration``: ``--resume``, ``--eval-only`` on
  ``model_final.pth``): every key of the model.

BatchNorm's ``num_batches_tracked`` counters are never required (FrozenBN has none, and the
converter leaves them out: a counter that starts at 0 changes nothing at fixed momentum).
Keys of the file that the model does not use (``fc``, a teacher's projector) are listed in
the log, not an error.

Saving is atomic (fvcore writes checkpoints and ``last_checkpoint`` in place, so a run killed
mid-write leaves a truncated file that ``--resume`` then fails on): the same content, written
to a temporary file and renamed.
"""
import os
import re

from detectron2.checkpoint import DetectionCheckpointer

from densessl.atomic_io import atomic_torch_save, atomic_write_text

_RESNET_KEY = re.compile(r'(^|\.)(stem\.|res[2-5]\.\d+\.)')
_NOT_REQUIRED = ('num_batches_tracked',)
_HOW_TO_MAKE = ('make a detectron2 backbone file with `python tools/convert_checkpoint.py '
                'CKPT OUT.pkl --dst-format d2` (its --src-format auto names the input format) '
                'and set MODEL.WEIGHTS to OUT.pkl, or MODEL.WEIGHTS "" to train from random init')


class CheckpointKeyError(RuntimeError):
    """A weights file that does not provide every key the model needs from it."""


def resnet_keys(state_keys):
    """The ResNet trunk's keys among a detectron2 model's state-dict keys (stem, res2..res5
    blocks; not ``res5.norm`` of the C4 head, not ``num_batches_tracked``)."""
    return [k for k in state_keys
            if _RESNET_KEY.search(k) and not k.endswith(_NOT_REQUIRED)]


def _shape_hints(missing, model_shapes, file_shapes):
    """'key: file (shape) vs model (shape)' for missing keys whose name is in the file."""
    hints = []
    for key in missing:
        for file_key, shape in file_shapes.items():
            if (key == file_key or key.endswith('.' + file_key)) and shape != model_shapes[key]:
                hints.append(f'{key}: {shape} in the file, {model_shapes[key]} in the model')
                break
    return hints


def _shapes(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items() if hasattr(v, 'shape')}


class CheckedDetectionCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` whose ``load`` raises on a missing file or a key the model
    needs from it, and whose ``save`` is atomic (see the module docstring)."""

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        data = {'model': self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        path = os.path.join(self.save_dir, f'{name}.pth')
        self.logger.info(f'Saving checkpoint to {path}')
        atomic_torch_save(data, path)
        self.tag_last_checkpoint(f'{name}.pth')

    def tag_last_checkpoint(self, last_filename_basename):
        atomic_write_text(last_filename_basename, os.path.join(self.save_dir, 'last_checkpoint'))

    def load(self, path, *args, **kwargs):
        if path and '://' not in path and not os.path.isfile(path):
            raise FileNotFoundError(
                f'MODEL.WEIGHTS / checkpoint {path!r} does not exist. Give the path of an '
                f'existing file; to {_HOW_TO_MAKE}.')
        self._loading_path = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading_path = None

    def _load_model(self, checkpoint):
        whole_model = 'iteration' in checkpoint and not checkpoint.get('matching_heuristics')
        file_shapes = _shapes(checkpoint.get('model', {}))
        model_shapes = _shapes(self.model.state_dict())
        required = (set(k for k in model_shapes if not k.endswith(_NOT_REQUIRED))
                    if whole_model else set(resnet_keys(model_shapes)))
        if not file_shapes:  # (detectron2's name matching fails on an empty dict)
            raise CheckpointKeyError(self._message(sorted(required), required, whole_model,
                                                   model_shapes, file_shapes))
        incompatible = super()._load_model(checkpoint)
        not_loaded = set(incompatible.missing_keys) | {k for k, *_ in incompatible.incorrect_shapes}
        missing = sorted(required & not_loaded)
        if missing:
            raise CheckpointKeyError(self._message(missing, required, whole_model,
                                                   model_shapes, file_shapes))
        return incompatible

    def _message(self, missing, required, whole_model, model_shapes, file_shapes):
        path = getattr(self, '_loading_path', None) or '<checkpoint>'
        what = 'every key of the model (a training checkpoint)' if whole_model else \
            'every ResNet key of the backbone'
        lines = [f'{path}: {len(missing)} of the {len(required)} keys that must come from this '
                 f'file ({what}) were not loaded; detectron2 would only log this and train '
                 f'them from random init.',
                 'not loaded: ' + ', '.join(missing[:8]) + (' ...' if len(missing) > 8 else '')]
        hints = _shape_hints(missing, model_shapes, file_shapes)
        if hints:
            lines.append('shape differs (weights of another architecture? compare '
                         'MODEL.RESNETS.DEPTH / RES2_OUT_CHANNELS with the file): '
                         + '; '.join(hints[:4]))
        if not file_shapes:
            lines.append('the file holds no weights under "model"')
        lines.append(f'To fix: {_HOW_TO_MAKE}.')
        return '\n'.join(lines)
