"""Dot products of sampled (query, key) pairs and rows of pixel maps, shared by ReCo's and
U2PL's contrastive losses (framework-free).

Both losses compare each of M queries with N keys drawn (with replacement) from a large table
of P rows: dots[m, n] = queries[m] . keys[positions[m, n]]. Gathering the M N key rows first
moves M N D floats (2.5 GB for ReCo at its defaults: 19 classes x 256 queries x 512
negatives x D = 256); ``sampled_dots`` instead reads each key row once, in order, as one
sampled dense-dense product (SDDMM, ``torch.sparse.sampled_addmm``) on the pairs sorted by
key. Keys get no gradient (both losses detach their negatives).
"""
import warnings

import torch
import torch.nn.functional as F


def pixel_rows(maps):
    """maps (B, D, h, w) -> (B h w, D) float: one row per pixel, raster order. Written image
    by image as 2-D transposed copies (blocked: about twice as fast as one 4-D permuted
    copy)."""
    batch, dim = maps.shape[:2]
    rows = torch.empty(batch, maps.shape[2] * maps.shape[3], dim, dtype=torch.float,
                       device=maps.device)
    for image in range(batch):
        rows[image].copy_(maps[image].reshape(dim, -1).t())
    return rows.view(-1, dim)


class _SampledDots(torch.autograd.Function):
    """queries (M, D), keys (P, D) detached, positions (M, N) -> (M, N)
    dots[m, n] = queries[m] . keys[positions[m, n]], without gathering the (M, N, D) keys.

    Forward: the M N (query, key) pairs, sorted by key (stable), are the nonzeros of a sparse
    (P, M) CSR matrix S whose row p lists the queries that drew key p (repeats allowed), and
    the dots are one SDDMM, S .* (keys @ queries^T) (``torch.sparse.sampled_addmm``): it
    reads each key row once, in order, and the queries (small enough for the cache) at
    random, where a per-query gather reads M N key rows at random (2.5 GB at the defaults
    with 19 classes and D = 256) and writes them out before the products.
    Backward: grad_queries[m] = sum_n g[m, n] keys[positions[m, n]], one fused pass
    (``F.embedding_bag`` with per-sample weights). No gradient to keys.
    """

    @staticmethod
    def forward(ctx, queries, keys, positions):
        num_queries, num_negatives = positions.shape
        num_keys = keys.shape[0]
        if num_keys >= 2 ** 31:
            raise ValueError(f'sampled_dots: {num_keys} keys do not fit 32-bit sort keys')
        # a 32-bit radix sort takes half the passes of a 64-bit one
        key_of_pair, pair = torch.sort(positions.reshape(-1).int(), stable=True)
        key_starts = torch.searchsorted(key_of_pair, torch.arange(
            num_keys + 1, dtype=key_of_pair.dtype, device=key_of_pair.device))  # CSR row pointers
        with warnings.catch_warnings():  # "sparse CSR support is in beta state", once
            warnings.simplefilter('ignore', UserWarning)
            pattern = torch.sparse_csr_tensor(key_starts, pair // max(1, num_negatives),
                                              queries.new_zeros(pair.numel()),
                                              size=(num_keys, num_queries),
                                              check_invariants=False)
        # out=pattern: the products land in its values (no copy of the pattern)
        sorted_dots = torch.sparse.sampled_addmm(pattern, keys, queries.t(), beta=0.0,
                                                 out=pattern).values()
        ctx.save_for_backward(keys, positions)
        dots = torch.empty_like(sorted_dots).index_copy_(0, pair, sorted_dots)
        return dots.view(num_queries, num_negatives)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        keys, positions = ctx.saved_tensors
        grad_queries = F.embedding_bag(positions, keys, mode='sum',
                                       per_sample_weights=grad.to(keys.dtype).contiguous())
        return grad_queries, None, None


def sampled_dots(queries, keys, positions):
    """queries (M, D) (gradient kept), keys (P, D) (detached), positions (M, N) long ->
    (M, N) dots[m, n] = queries[m] . keys[positions[m, n]] (see ``_SampledDots``)."""
    return _SampledDots.apply(queries, keys, positions)


def sampled_row_norms(table, rows):
    """table (T, D), rows (...) long -> (...) ||table[rows]||, without gathering the rows: the
    squared norms are an SDDMM of the table with itself on the pattern {(r, r)} (rows sorted,
    ``torch.sparse.sampled_addmm``), which reads each row once, in order."""
    flat_rows, order = torch.sort(rows.reshape(-1))
    starts = torch.searchsorted(flat_rows, torch.arange(table.shape[0] + 1, device=rows.device))
    with warnings.catch_warnings():  # "sparse CSR support is in beta state", once
        warnings.simplefilter('ignore', UserWarning)
        pattern = torch.sparse_csr_tensor(starts, flat_rows, table.new_zeros(flat_rows.numel()),
                                          size=(table.shape[0], table.shape[0]),
                                          check_invariants=False)
    squares = torch.sparse.sampled_addmm(pattern, table, table.t(), beta=0.0,
                                         out=pattern).values()
    return torch.empty_like(squares).index_copy_(0, order, squares).sqrt().view(rows.shape)
