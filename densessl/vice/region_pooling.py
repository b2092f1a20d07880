"""Superpixel-region pooling of ViCE's dense SwAV loss, vectorised over all regions at once.

Spec: shared/specs/pretrain.md 1(a) D and section 6. A *region* is a (map b, superpixel id r)
pair with r >= 0; map b is row b of the view-major batch (b = v * N + n: view v of image n).
For region g with pixels P_g, embeddings z_p (unit L2) and prototype scores s_p:

    p*_g  = argmax_{p in P_g} max_k s_pk        (first pixel in raster order on ties)
    z*_g  = stopgrad(z_{p*_g}),  s*_g = s_{p*_g}  (gradient kept)
    coh_g = mean_{p in P_g} || z_p - z*_g + 1e-6 ||_2     (torch.nn.PairwiseDistance)

Everything is computed with ``torch.unique`` + ``scatter_reduce`` over a (map, id) key, so the
cost is a few passes over the pixels whatever the number of regions (the original loops over
regions in Python, ~35 ms each; section 6 item 6).
"""
from dataclasses import dataclass

import torch

PAIRWISE_DISTANCE_EPS = 1e-6  # nn.PairwiseDistance's default eps, added to the difference


@dataclass
class Regions:
    """All regions of a batch, sorted by (map, id).

    ``map_index`` (G,) the batch row b of each region, ``region_id`` (G,) its superpixel id,
    ``rep_embedding`` (G, D) z*_g (detached), ``rep_scores`` (G, K) s*_g (with gradient),
    ``coherence`` (G,) coh_g (with gradient), ``num_pixels`` (G,), ``id_span`` (int) one more
    than the largest superpixel id, so ``b * id_span + id`` is a unique region key.
    """
    map_index: torch.Tensor
    region_id: torch.Tensor
    rep_embedding: torch.Tensor
    rep_scores: torch.Tensor
    coherence: torch.Tensor
    num_pixels: torch.Tensor
    id_span: int


def _segment_reduce(values, segment, num_segments, reduce):
    """Reduce ``values`` (P,) into ``num_segments`` buckets by ``segment`` (P,) ids."""
    out = values.new_zeros(num_segments)
    return out.scatter_reduce(0, segment, values, reduce=reduce, include_self=False)


def pool_regions(embeddings, scores, superpixels):
    """Representatives and coherence of every region.

    embeddings (B, D, H, W) L2-normalised over D; scores (B, K, H, W); superpixels (B, H, W)
    long, -1 = not learnable. Returns ``Regions`` (G regions, sorted by map then id).
    """
    if superpixels.shape != (embeddings.shape[0],) + embeddings.shape[2:]:
        raise ValueError(f'superpixels {tuple(superpixels.shape)} do not match the embeddings '
                         f'{tuple(embeddings.shape)} (expected (B, H, W))')
    pixels_per_map = superpixels[0].numel()
    flat_ids = superpixels.reshape(-1).long()
    pixel = torch.nonzero(flat_ids >= 0).squeeze(1)            # (P,) flat index b*HW + hw
    map_of_pixel = torch.div(pixel, pixels_per_map, rounding_mode='floor')
    place_of_pixel = pixel - map_of_pixel * pixels_per_map
    ids = flat_ids[pixel]
    id_span = int(ids.max()) + 1 if ids.numel() else 1
    key = map_of_pixel * id_span + ids
    region_key, region_of_pixel = torch.unique(key, sorted=True, return_inverse=True)
    num_regions = region_key.numel()
    first_pixel = _segment_reduce(pixel, region_of_pixel, num_regions, 'amin')

    # representative: the first pixel of the region whose best prototype score is the highest
    best = scores.detach().amax(dim=1).reshape(-1)[pixel].float()
    region_best = _segment_reduce(best, region_of_pixel, num_regions, 'amax')
    is_best = best == region_best[region_of_pixel]
    candidate = torch.where(is_best, torch.arange(pixel.numel(), device=pixel.device),
                            torch.full_like(pixel, pixel.numel()))
    rep = _segment_reduce(candidate, region_of_pixel, num_regions, 'amin')   # (G,) into P

    # gathers straight from the (B, C, HW) layout: no permuted copy of the whole maps
    z = embeddings.flatten(2)[map_of_pixel, :, place_of_pixel].float()      # (P, D)
    rep_embedding = z[rep].detach()
    rep_scores = scores.flatten(2)[map_of_pixel[rep], :, place_of_pixel[rep]].float()  # (G, K)

    difference = z - rep_embedding[region_of_pixel]
    distance = torch.linalg.vector_norm(difference.add_(PAIRWISE_DISTANCE_EPS), dim=1)
    num_pixels = torch.bincount(region_of_pixel, minlength=num_regions)
    coherence = torch.zeros(num_regions, dtype=distance.dtype, device=distance.device)
    coherence = coherence.index_add(0, region_of_pixel, distance) / num_pixels

    map_index = torch.div(first_pixel, pixels_per_map, rounding_mode='floor')
    region_id = flat_ids[first_pixel]
    return Regions(map_index, region_id, rep_embedding, rep_scores, coherence, num_pixels,
                   id_span)


def mean_coherence(regions, num_maps):
    """L_coh = mean over maps (view, image) that have regions of the mean over their regions."""
    per_map_sum = regions.coherence.new_zeros(num_maps).index_add(
        0, regions.map_index, regions.coherence)
    per_map_count = torch.bincount(regions.map_index, minlength=num_maps)
    has_regions = per_map_count > 0
    return (per_map_sum[has_regions] / per_map_count[has_regions]).mean()
