"""Context corruption of ViCE's views: masked superpixels, later filled with noise.

Spec: ../shared/specs/pretrain.md 1(a) A, steps 6 and 12. All in a view's output pixels
(S x S, after the resize of step 7; the original works in the view's pre-resize pixels, which
is the same up to the nearest-neighbour resampling).

- ``choose_preserved_ids``: ``floor(ratio * n)`` of the n common region ids, never masked.
- ``sample_mask_rectangles``: per view, a rectangle of width / height
  ``(vonMises(pi/2, 2) + pi) / (2 pi) * intensity * S`` (so in ``[0, intensity * S]``) centred
  at radius ``(vonMises(pi/2, 2) + pi) / (2 pi) * S / 2`` from the view centre, at a uniform
  angle, then shifted so it lies in the view.
- ``masked_regions``: every region the rectangle touches, except preserved ones, is masked in
  that view (its pixels get noise) and is no longer learnable in any view.
- ``fill_noise``: after normalisation, masked pixels get ``U(-1, 1)`` noise, per channel.
"""
import numpy as np
import torch

MASK_KAPPA = 2.0  # von Mises concentration of the rectangle's radius and sides (original's constant)


def _von_mises_fraction(rng, size):
    """Samples of ``(vonMises(pi/2, 2) + pi) / (2 pi)`` in [0, 1], mode 0.75."""
    return (rng.vonmises(0.5 * np.pi, MASK_KAPPA, size=size) + np.pi) / (2 * np.pi)


def choose_preserved_ids(common_ids, ratio, rng):
    """(floor(ratio * n),) ids drawn without replacement from the (n,) ``common_ids``."""
    common_ids = np.asarray(common_ids)
    return rng.choice(common_ids, int(ratio * len(common_ids)), replace=False)


def sample_mask_rectangles(view_n, size, intensity, rng):
    """(V, 4) int rectangles ``(x0, y0, x1, y1)`` inside an S x S view (S = ``size``)."""
    angle = rng.uniform(0.0, 2 * np.pi, size=view_n)
    radius = _von_mises_fraction(rng, view_n) * size / 2
    sides = (_von_mises_fraction(rng, (view_n, 2)) * intensity * size).astype(np.int64)
    half = sides // 2
    centre = size // 2 + np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1).astype(np.int64)
    centre = np.clip(centre, half, size - half)
    return np.concatenate([centre - half, centre + half], axis=1)


def masked_regions(label_maps, rectangles, preserved_ids):
    """Regions hidden by the rectangles.

    ``label_maps``: (V, S, S) int region ids (all regions, before any filtering);
    ``rectangles``: (V, 4). Returns ``noise_masks`` (V, S, S) bool, True where a pixel's region
    is masked in that view, and ``masked_ids``, the sorted ids masked in any view.
    """
    noise_masks = np.zeros(label_maps.shape, dtype=bool)
    masked_all = []
    for v, (x0, y0, x1, y1) in enumerate(rectangles):
        touched = np.unique(label_maps[v, y0:y1, x0:x1])
        masked = np.setdiff1d(touched, preserved_ids)
        noise_masks[v] = np.isin(label_maps[v], masked)
        masked_all.append(masked)
    return noise_masks, np.unique(np.concatenate(masked_all))


def fill_noise(views, noise_masks, rng):
    """Replace masked pixels of ``views`` (V, 3, S, S) float by U(-1, 1), per channel.

    ``noise_masks``: (V, S, S) bool. Returns a new tensor; unmasked pixels are unchanged.
    """
    out = views.clone()
    mask = torch.as_tensor(noise_masks, dtype=torch.bool)
    count = int(mask.sum())
    noise = torch.from_numpy(rng.uniform(-1.0, 1.0, size=(count, views.shape[1])))
    out.permute(0, 2, 3, 1)[mask] = noise.to(views.dtype)
    return out
