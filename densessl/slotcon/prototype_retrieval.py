"""Nearest images of each SlotCon prototype (what ``tools/viz_slots.py`` draws).

For N images with teacher score maps ``dots`` (N, K, h, w), the cosine similarity of every
pixel's projected feature to every prototype (``SemanticGrouping``), a pixel belongs to the
prototype that is its argmax, and image n's score for prototype k is the mean similarity over
the pixels that belong to k:

    owner(n, p)  = argmax_k dots[n, k, p]
    score(n, k)  = mean_{p : owner(n, p) = k} dots[n, k, p]        (-inf when no pixel is k's)

The top-k images of prototype k are the k highest scores; an image where k owns no pixel is
never retrieved for k (the original instead falls back to the image's mean similarity, so a
prototype that owns nothing still shows k images, none of them its own). ``owner_masks`` gives
the masks drawn over the retrieved images.
"""
import torch


def owner_masks(dots):
    """(N, K, h, w) scores -> (N, K, h, w) bool, True where prototype k is the pixel's argmax."""
    owner = dots.argmax(dim=1, keepdim=True)
    prototype = torch.arange(dots.shape[1], device=dots.device).view(1, -1, 1, 1)
    return owner == prototype


def prototype_scores(dots):
    """(N, K, h, w) -> (N, K): mean score over the pixels each prototype owns; -inf if none."""
    masks = owner_masks(dots)
    counts = masks.sum(dim=(2, 3))
    sums = torch.where(masks, dots, torch.zeros_like(dots)).sum(dim=(2, 3))
    scores = sums / counts.clamp(min=1)
    return scores.masked_fill(counts == 0, float('-inf'))


def top_images(scores, k):
    """(N, K) scores -> (indices (K, k) long, valid (K, k) bool): the k best images of each
    prototype, best first; ``valid`` is False where fewer than k images have any pixel of it."""
    k = min(k, scores.shape[0])
    values, indices = scores.t().topk(k, dim=1)
    return indices, torch.isfinite(values)
