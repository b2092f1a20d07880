"""Loading transforms that stop at bad input with a message naming the file and the fix.

``LoadImageFromFileChecked`` / ``LoadAnnotationsChecked`` replace MMSeg's
``LoadImageFromFile`` / ``LoadAnnotations`` in densessl's configs (same arguments):

- a missing image or label file raises :class:`MissingDataFileError` naming the file;
- a file that does not decode (truncated, not an image) raises :class:`CorruptDataFileError`
  naming the file (the stock transforms fail later with ``'NoneType' object has no
  attribute 'astype'`` or similar, without the path);
- a label value outside ``[0, num_classes)`` that is not the ignore index (255) raises
  :class:`LabelRangeError` naming the file, the values and the valid range (MMSeg would
  train on it silently, or crash inside the loss with an index error).
"""
import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS


class DataFileError(RuntimeError):
    """A data set file is missing, corrupt or holds invalid values."""


class MissingDataFileError(DataFileError, FileNotFoundError):
    pass


class CorruptDataFileError(DataFileError):
    pass


class LabelRangeError(DataFileError, ValueError):
    pass


def _check_exists(path, what, backend_args=None):
    if not fileio.exists(path, backend_args=backend_args):
        raise MissingDataFileError(
            f'{what} not found: {path}. Check data_root / data_prefix in the config; if the '
            f'data set is incomplete, re-create it (synthetic scenes: python '
            f'tools/gen_synthetic_scenes.py --out ROOT --force).')


def _corrupt(path, what, cause):
    cause = ' '.join(str(cause).split())[:300]  # one line (OpenCV's messages span several)
    return CorruptDataFileError(
        f'cannot decode {what} {path} ({cause}): the file is corrupt, truncated or not an '
        f'image. Replace it (synthetic scenes: python tools/gen_synthetic_scenes.py --out ROOT '
        f'--force) or remove it from the data set.')


@TRANSFORMS.register_module()
class LoadImageFromFileChecked(LoadImageFromFile):
    """``LoadImageFromFile`` that names the file when it is missing or corrupt."""

    def transform(self, results):
        path = results['img_path']
        _check_exists(path, 'image file', self.backend_args)
        try:
            out = super().transform(results)
        except Exception as e:  # mmcv raises assorted errors on undecodable bytes
            raise _corrupt(path, 'image file', f'{type(e).__name__}: {e}') from e
        if out is None or out.get('img') is None or out['img'].size == 0:
            raise _corrupt(path, 'image file', 'decoded to nothing')
        return out


@TRANSFORMS.register_module()
class LoadAnnotationsChecked(LoadAnnotations):
    """``LoadAnnotations`` that checks every label map.

    Args:
        num_classes (int): valid labels are ``0 .. num_classes - 1``.
        ignore_index (int): the one other value allowed (default 255).
        **kwargs: ``LoadAnnotations``' arguments.
    """

    def __init__(self, num_classes, ignore_index=255, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index

    def _load_seg_map(self, results):
        path = results['seg_map_path']
        _check_exists(path, 'label file', self.backend_args)
        try:
            raw = mmcv.imfrombytes(fileio.get(path, backend_args=self.backend_args),
                                   flag='unchanged', backend=self.imdecode_backend)
        except Exception as e:  # mmcv raises assorted errors on undecodable bytes
            raise _corrupt(path, 'label file', f'{type(e).__name__}: {e}') from e
        if raw is None or raw.size == 0:
            raise _corrupt(path, 'label file', 'decoded to nothing')
        raw = raw.squeeze()
        if raw.ndim != 2:
            raise DataFileError(
                f'label file {path} has shape {raw.shape}: a label map must be one channel of '
                f'train ids (a colour-coded label image must be converted first).')
        if raw.max() > 255 or raw.min() < 0:
            # mmseg casts labels to uint8, which would wrap these values silently
            bad = np.unique(raw[(raw > 255) | (raw < 0)])
            raise self._range_error(path, bad)
        super()._load_seg_map(results)
        seg = results.get('gt_seg_map')
        if seg is None or seg.size == 0:
            raise _corrupt(path, 'label file', 'decoded to nothing')
        values = np.unique(seg)
        bad = values[((values < 0) | (values >= self.num_classes))
                     & (values != self.ignore_index)]
        if bad.size:
            raise self._range_error(path, bad)

    def _range_error(self, path, bad):
        shown = bad.tolist()[:10]
        more = f' (and {bad.size - 10} more)' if bad.size > 10 else ''
        return LabelRangeError(
            f'label file {path} holds value(s) {shown}{more} outside the valid range '
            f'[0, {self.num_classes}) that are not the ignore index {self.ignore_index}. '
            f'Convert the labels to train ids (0..{self.num_classes - 1}, '
            f'{self.ignore_index} = ignore), or fix num_classes in the config.')
