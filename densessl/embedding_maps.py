"""Colourings of dense embedding maps: PCA-to-RGB and joint k-means cluster maps.

An embedding map is a tensor ``(D, H, W)`` (one D-dim vector per pixel). Both colourings are
*fitted over a set of maps jointly*, so a colour means the same thing in every image of the set.

PCA-to-RGB (``EmbeddingPCA``)::

    mu = mean_p x_p,   C = mean_p (x_p - mu)(x_p - mu)^T        over all pixels p of all maps
    u_1..u_3 = top-3 eigenvectors of C (sign fixed: largest-|.| entry positive)
    y_p[c] = u_c . (x_p - mu)
    rgb_p[c] = clip((y_p[c] - lo_c) / (hi_c - lo_c), 0, 1)    lo_c, hi_c: percentiles of y[c]

Mean and covariance are accumulated map by map in float64 (exact over all pixels, memory
O(D^2)); the percentiles are taken over all projected pixels.

k-means (``fit_kmeans`` / ``assign_clusters``): Euclidean Lloyd iterations with k-means++
seeding from a fixed ``torch.Generator`` seed, vectorised (chunked distance matrices,
``index_add_`` centroid sums); clusters are renumbered by decreasing size, so cluster 0 is the
largest. ``cluster_palette(k)`` gives k distinct fixed colours.
"""
import colorsys
import math

import numpy as np
import torch

CHUNK_ROWS = 65536  # rows of a (P, k) distance matrix computed at once


def _check_map(embedding, where='embedding map'):
    if not isinstance(embedding, torch.Tensor) or embedding.dim() != 3:
        shape = tuple(embedding.shape) if hasattr(embedding, 'shape') else type(embedding)
        raise ValueError(f'{where}: expected a (D, H, W) tensor, got {shape}')
    return embedding


def pixels_of(embedding):
    """(D, H, W) -> (H*W, D) float32, one row per pixel in raster order."""
    _check_map(embedding)
    return embedding.detach().float().flatten(1).t()


class EmbeddingPCA:
    """3-component PCA of the pixels of a set of (D, H, W) maps, mapped to RGB in [0, 1].

    Args:
        maps: the (D, H, W) tensors to fit on (all of them, all pixels).
        percentiles: (low, high) percentiles of each component's projections that map to 0 and 1.
    """

    def __init__(self, maps, percentiles=(1.0, 99.0)):
        maps = list(maps)
        if not maps:
            raise ValueError('EmbeddingPCA: no embedding maps to fit on')
        low, high = percentiles
        if not 0 <= low < high <= 100:
            raise ValueError(f'EmbeddingPCA: percentiles={percentiles} must satisfy '
                             f'0 <= low < high <= 100')
        dims = {_check_map(m, f'map {i}').shape[0] for i, m in enumerate(maps)}
        if len(dims) != 1:
            raise ValueError(f'EmbeddingPCA: the maps have different channel counts {sorted(dims)}')
        dim = dims.pop()
        if dim < 3:
            raise ValueError(f'EmbeddingPCA: need at least 3 channels for RGB, the maps have {dim}')
        total = 0
        first = torch.zeros(dim, dtype=torch.float64)        # sum_p x_p
        second = torch.zeros(dim, dim, dtype=torch.float64)  # sum_p x_p x_p^T
        for m in maps:
            x = pixels_of(m).double()
            total += x.shape[0]
            first += x.sum(0)
            second += x.t() @ x
        self.mean = first / total
        covariance = second / total - torch.outer(self.mean, self.mean)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
        order = torch.argsort(eigenvalues, descending=True)
        eigenvalues, eigenvectors = eigenvalues[order].clamp_min(0), eigenvectors[:, order]
        components = eigenvectors[:, :3].t().contiguous()  # (3, D)
        peak = components.abs().argmax(dim=1)
        signs = torch.sign(components[torch.arange(3), peak])
        self.components = components * torch.where(signs == 0, 1.0, signs)[:, None]
        # (3,) fraction of the total variance along each component (0 for a constant set)
        self.explained_variance_ratio = eigenvalues[:3] / eigenvalues.sum().clamp_min(1e-300)
        projected = np.concatenate([self.project(m).reshape(3, -1) for m in maps], axis=1)
        self.low = np.percentile(projected, low, axis=1).astype(np.float32)    # (3,)
        self.high = np.percentile(projected, high, axis=1).astype(np.float32)  # (3,)

    def project(self, embedding):
        """(D, H, W) -> (3, H, W) float32 numpy array of the component scores."""
        x = pixels_of(embedding).double() - self.mean
        _, h, w = embedding.shape
        return (x @ self.components.t()).t().reshape(3, h, w).float().numpy()

    def to_rgb(self, embedding):
        """(D, H, W) -> (H, W, 3) float32 in [0, 1]; a component with no spread maps to 0.5."""
        scores = self.project(embedding)
        spread = self.high - self.low
        flat = spread <= 1e-12
        scaled = (scores - self.low[:, None, None]) / np.where(flat, 1.0, spread)[:, None, None]
        scaled[flat] = 0.5
        return np.clip(scaled, 0.0, 1.0).transpose(1, 2, 0)


def _squared_distances(points, centroids):
    """(P, D), (k, D) -> (P, k) squared Euclidean distances (clamped at 0)."""
    return ((points * points).sum(1, keepdim=True) - 2 * points @ centroids.t()
            + (centroids * centroids).sum(1)[None]).clamp_min(0)


def assign_clusters(points, centroids):
    """(P, D) points, (k, D) centroids -> (P,) int64 index of the nearest centroid."""
    points, centroids = points.float(), centroids.float()
    return torch.cat([_squared_distances(points[i:i + CHUNK_ROWS], centroids).argmin(1)
                      for i in range(0, points.shape[0], CHUNK_ROWS)])


def _kmeans_plus_plus(points, k, generator):
    """k-means++ seeding: (P, D) -> (k, D); each next centre drawn with prob ~ d^2."""
    n = points.shape[0]
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    nearest = torch.full((n,), math.inf)
    for _ in range(1, k):
        nearest = torch.minimum(nearest, torch.cat([
            _squared_distances(points[i:i + CHUNK_ROWS], points[chosen[-1]][None])[:, 0]
            for i in range(0, n, CHUNK_ROWS)]))
        mass = nearest.sum()
        if mass > 0:
            chosen.append(int(torch.multinomial(nearest / mass, 1, generator=generator)))
        else:  # fewer distinct points than k: a duplicate centre, which stays empty
            chosen.append(int(torch.randint(n, (1,), generator=generator)))
    return points[chosen].clone()


def fit_kmeans(points, k, seed=0, max_iters=100, tol=1e-6):
    """Lloyd's k-means on (P, D) points -> (k, D) float32 centroids, largest cluster first.

    Deterministic for a given ``seed``. A cluster that becomes empty keeps its centroid.
    Stops when no centroid moves more than ``tol`` (Euclidean) or after ``max_iters``.
    """
    if not isinstance(points, torch.Tensor) or points.dim() != 2:
        raise ValueError(f'fit_kmeans: expected a (P, D) tensor, got '
                         f'{tuple(getattr(points, "shape", ())) or type(points).__name__}')
    if not 1 <= k <= points.shape[0]:
        raise ValueError(f'fit_kmeans: k={k} must be between 1 and the number of points '
                         f'({points.shape[0]})')
    points = points.detach().float()
    generator = torch.Generator().manual_seed(seed)
    centroids = _kmeans_plus_plus(points, k, generator)
    for _ in range(max_iters):
        labels = assign_clusters(points, centroids)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, labels, points)
        updated = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], centroids)
        shift = (updated - centroids).norm(dim=1).max()
        centroids = updated
        if shift <= tol:
            break
    counts = torch.bincount(assign_clusters(points, centroids), minlength=k)
    order = torch.argsort(counts, descending=True, stable=True)
    return centroids[order]


def sample_pixels(maps, max_pixels, seed=0):
    """Up to ``max_pixels`` rows (P, D) drawn uniformly without replacement from the pixels of
    all (D, H, W) maps pooled together (all of them when there are fewer)."""
    pooled = torch.cat([pixels_of(m) for m in maps])
    if max_pixels is None or pooled.shape[0] <= max_pixels:
        return pooled
    generator = torch.Generator().manual_seed(seed)
    return pooled[torch.randperm(pooled.shape[0], generator=generator)[:max_pixels]]


def cluster_map(embedding, centroids):
    """(D, H, W) map, (k, D) centroids -> (H, W) int64 cluster indices."""
    _, h, w = _check_map(embedding).shape
    return assign_clusters(pixels_of(embedding), centroids).reshape(h, w)


def cluster_palette(k):
    """(k, 3) uint8 colours, distinct and fixed: hues stepped by the golden ratio, saturation
    and value alternating so neighbours in index also differ in brightness."""
    golden = (math.sqrt(5) - 1) / 2
    colours = [colorsys.hsv_to_rgb((i * golden) % 1.0, (0.85, 0.55)[i // 2 % 2],
                                   (0.95, 0.7)[i % 2]) for i in range(k)]
    return np.round(np.array(colours, dtype=np.float64).reshape(k, 3) * 255).astype(np.uint8)


def colour_clusters(labels, palette):
    """(H, W) int cluster indices, (k, 3) uint8 palette -> (H, W, 3) uint8 image."""
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return np.asarray(palette, dtype=np.uint8)[labels]
