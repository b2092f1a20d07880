"""ReCo's partial labels p0 / p1 / p5 / p25: a few labelled pixels per class and image.
Spec: shared/specs/semisup.md 1(a) "Partial-label generation" (``dataset/*_preprocess.py``).

For every image and every valid class ``c`` (label != ignore) with pixel set ``P_c``
(``n_c = |P_c|``), one seed pixel ``s_c`` is drawn uniformly from ``P_c``; then

- **p0**: only the seed is labelled (exactly 1 pixel per class);
- **p1 / p5 / p25** (``p`` = 0.01 / 0.05 / 0.25): the original starts from the seed mask and
  repeatedly dilates it with a 5 x 5 kernel until the mask *intersected with* ``P_c`` holds at
  least ``target_c = int(p * n_c)`` pixels (``int`` of the float product, i.e. the floor).
  The dilated mask itself is not restricted to the class, so after ``k`` dilations it is the
  square of half-width ``2k`` around the seed (clipped to the image), and the labelled set is

      L_c = {q in P_c : ||q - s_c||_inf <= 2k},   k = min{k >= 0 : |L_c| >= target_c}
          = ceil(r / 2)  with r = the target_c-th smallest ||q - s_c||_inf over P_c

  (``k = 0``, the seed alone, when ``target_c <= 1``). So ``max(1, target_c) <= |L_c| <= n_c``;
  the last dilation may overshoot the target, and pixels of ``c`` not connected to the seed
  are labelled when the square reaches them. Computed in closed form here (no loop).

Every other pixel is ``ignore_index`` (255; the original's Cityscapes files write raw id 0,
mapped to 255 when loaded). Classes are processed in ascending order, and the seed is the
``rng.integers(n_c)``-th pixel of ``P_c`` in raster order.

**Seeding** (decided here): the original draws from one global numpy stream over a ``glob``
listing per seed 0, 1, 2, so an image's partial label depends on the file order. Here
:func:`partial_label_rng` seeds a generator from ``(seed, image id)`` alone, and the four modes
use the same stream, so they share their seed pixels and are nested
(p0 within p1 within p5 within p25).
"""
import hashlib
import math

import numpy as np

IGNORE_INDEX = 255
PARTIAL_MODES = {'p0': 0.0, 'p1': 0.01, 'p5': 0.05, 'p25': 0.25}
GROWTH = 2  # one 5 x 5 dilation widens the square by 2 px on each side


def partial_label_rng(seed, image_id):
    """numpy Generator depending only on ``(seed, image_id)`` (sha256 of the id, so stable
    across processes and Python versions, unlike ``hash``)."""
    digest = hashlib.sha256(str(image_id).encode('utf-8')).digest()
    words = np.frombuffer(digest, dtype=np.uint32).tolist()
    return np.random.default_rng(np.random.SeedSequence([int(seed), *words]))


def target_count(num_pixels, mode):
    """``int(p * n)``: the pixels of a class the growth must reach (0 for p0)."""
    if mode not in PARTIAL_MODES:
        raise ValueError(f'partial label mode {mode!r} is not one of {sorted(PARTIAL_MODES)}')
    return int(PARTIAL_MODES[mode] * num_pixels)


def grown_region(ys, xs, seed_index, target):
    """Bool mask over a class's pixels (ys, xs in raster order): those within Chebyshev
    distance ``2k`` of pixel ``seed_index``, ``k`` the fewest 5 x 5 dilations reaching
    ``target`` pixels (module docstring)."""
    dist = np.maximum(np.abs(ys - ys[seed_index]), np.abs(xs - xs[seed_index]))
    if target <= 1:
        return dist == 0
    reach = np.partition(dist, target - 1)[target - 1]
    return dist <= GROWTH * math.ceil(reach / GROWTH)


def partial_labels(label, mode, rng, ignore_index=IGNORE_INDEX):
    """(H, W) integer label map -> the partial map of ``mode`` (same dtype): class ``c`` on
    its grown region, ``ignore_index`` elsewhere. ``rng``: numpy Generator, one draw per class
    in ascending class order."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f'partial_labels: label must be (H, W), got {label.shape}')
    target_count(0, mode)  # validates the mode
    out = np.full_like(label, ignore_index)
    classes = np.unique(label)
    for c in classes[classes != ignore_index]:
        ys, xs = np.nonzero(label == c)
        seed_index = int(rng.integers(ys.size))
        keep = grown_region(ys, xs, seed_index, target_count(ys.size, mode))
        out[ys[keep], xs[keep]] = c
    return out


def partial_labels_for_image(label, mode, seed, image_id, ignore_index=IGNORE_INDEX):
    """:func:`partial_labels` with :func:`partial_label_rng` ``(seed, image_id)``: the same
    output for an image whatever the order or process it is generated in."""
    return partial_labels(label, mode, partial_label_rng(seed, image_id), ignore_index)
