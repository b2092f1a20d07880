"""Prototype retrieval of tools/viz_slots.py (densessl/slotcon/prototype_retrieval.py) against
a per-image, per-prototype loop written from its definition."""
import math

import torch

from densessl.slotcon.prototype_retrieval import owner_masks, prototype_scores, top_images


def reference_scores(dots):
    n_images, k_protos, h, w = dots.shape
    scores = torch.empty(n_images, k_protos)
    for n in range(n_images):
        for k in range(k_protos):
            owned = [dots[n, k, i, j].item() for i in range(h) for j in range(w)
                     if dots[n, :, i, j].argmax().item() == k]
            scores[n, k] = sum(owned) / len(owned) if owned else -math.inf
    return scores


def test_scores_are_the_mean_over_owned_pixels():
    torch.manual_seed(0)
    dots = torch.randn(5, 7, 4, 6)
    torch.testing.assert_close(prototype_scores(dots), reference_scores(dots))
    masks = owner_masks(dots)
    assert masks.dtype == torch.bool and bool((masks.sum(dim=1) == 1).all())


def test_top_images_rank_owned_images_first_and_flag_missing_ones():
    torch.manual_seed(1)
    dots = torch.randn(6, 3, 3, 3)
    dots[:, 2] = -10.0                      # prototype 2 owns no pixel anywhere
    dots[4, 1] = 10.0                       # image 4 belongs to prototype 1 entirely
    scores = prototype_scores(dots)
    indices, valid = top_images(scores, 4)
    assert indices.shape == valid.shape == (3, 4)
    assert int(indices[1, 0]) == 4 and bool(valid[1, 0])
    assert not bool(valid[2].any())         # never retrieved for a prototype it is not in
    reference = reference_scores(dots)
    for k in range(2):
        order = sorted(range(6), key=lambda n: -reference[n, k].item())[:4]
        expected_valid = [math.isfinite(reference[n, k].item()) for n in order]
        assert valid[k].tolist() == expected_valid
        assert [int(i) for i, v in zip(indices[k], valid[k]) if v] == \
            [n for n, v in zip(order, expected_valid) if v]
