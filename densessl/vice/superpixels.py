"""SLIC superpixels of the whole standardised image (spec 1(a) A step 5).

Uses OpenCV's ``cv2.ximgproc`` SLIC (algorithm ``SLIC``, not SLICO/MSLIC), as the original
does, so the regions are the original's: a 3x3 Gaussian blur, then SLIC with
``region_size`` (grid step, px), ``ruler`` (compactness) and ``iterations``; no connectivity
enforcement. ``cv2.ximgproc`` is in ``opencv-contrib-python(-headless)``, not in
``opencv-python`` (requirements/runtime.txt pins the contrib build).

The original feeds BGR; SLIC's colour distance and seed placement are symmetric in the
channels, so RGB gives identical labels (checked in tests/test_vice_data.py).

OpenCV 5.0's SLIC crashes the process (segfault) when ``region_size`` exceeds twice the image's
short side; such an image is returned as one region (label 0) without calling OpenCV.
"""
import cv2
import numpy as np


def _ximgproc():
    if not hasattr(cv2, 'ximgproc'):
        raise ImportError(
            "cv2.ximgproc is missing: ViCE's superpixels need OpenCV's contrib modules. "
            "Run: pip uninstall -y opencv-python && pip install "
            "opencv-contrib-python-headless==" + cv2.__version__ + " (or bash tools/setup_env.sh)")
    return cv2.ximgproc


def slic_superpixels(rgb, region_size=20, ruler=10.0, iterations=5):
    """(H, W) int32 region ids in ``[0, n)`` of an (H, W, 3) uint8 image; ids need not all occur."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'slic_superpixels expects an (H, W, 3) uint8 image, got '
                         f'{rgb.shape} {rgb.dtype}')
    ximgproc = _ximgproc()
    if region_size > 2 * min(rgb.shape[:2]):
        return np.zeros(rgb.shape[:2], dtype=np.int32)
    slic = ximgproc.createSuperpixelSLIC(cv2.GaussianBlur(rgb, (3, 3), 0),
                                         algorithm=ximgproc.SLIC,
                                         region_size=int(region_size), ruler=float(ruler))
    slic.iterate(int(iterations))
    return slic.getLabels()
