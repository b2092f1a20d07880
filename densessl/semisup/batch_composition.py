"""Batches with a fixed number of labelled and unlabelled images, from one index stream.

Both originals draw a labelled and an unlabelled batch every iteration from two loaders. In
one data loader over ``ConcatDataset([labelled, unlabelled])`` the same is an index stream
whose every batch of ``labelled_per_batch + unlabelled_per_batch`` indices holds the
labelled ones first::

    batch t = [l_t1 .. l_tL | N_l + u_t1 .. N_l + u_tU],   N_l = len(labelled)

Each source is an endless sequence of seeded permutations (a new permutation per pass over
the source, so a small labelled set repeats in a new order), and process ``rank`` of
``world_size`` takes every ``world_size``-th index of it: the processes see disjoint
samples of each pass, and the stream depends only on (sizes, seed, rank, world size).
"""
import itertools

import torch


def source_stream(size, seed, rank=0, world_size=1):
    """Endless indices into one source of ``size`` samples: seeded permutations, one per
    pass, strided by rank."""
    if size <= 0:
        raise ValueError('a source of the labelled / unlabelled mix is empty: check its split '
                         'file or data root')
    generator = torch.Generator().manual_seed(seed)
    passes = (torch.randperm(size, generator=generator).tolist() for _ in itertools.count())
    yield from itertools.islice(itertools.chain.from_iterable(passes), rank, None, world_size)


def mixed_batch_indices(num_labelled, num_unlabelled, labelled_per_batch,
                        unlabelled_per_batch, seed, rank=0, world_size=1):
    """Endless indices into ``ConcatDataset([labelled, unlabelled])``: per batch,
    ``labelled_per_batch`` labelled indices, then ``unlabelled_per_batch`` unlabelled ones."""
    if labelled_per_batch < 0 or unlabelled_per_batch < 0 or \
            labelled_per_batch + unlabelled_per_batch == 0:
        raise ValueError(f'images per batch must be >= 0 and not both 0, got labelled '
                         f'{labelled_per_batch}, unlabelled {unlabelled_per_batch}')
    labelled = source_stream(num_labelled, seed, rank, world_size) if labelled_per_batch else None
    unlabelled = (source_stream(num_unlabelled, seed + 1, rank, world_size)
                  if unlabelled_per_batch else None)
    while True:
        for _ in range(labelled_per_batch):
            yield next(labelled)
        for _ in range(unlabelled_per_batch):
            yield num_labelled + next(unlabelled)


def split_batch_sizes(batch_size, labelled_fraction):
    """(labelled, unlabelled) images per batch for a total ``batch_size``; the labelled
    share rounds to the nearest integer (0.5 of 8 -> 4 + 4)."""
    if not 0.0 <= labelled_fraction <= 1.0:
        raise ValueError(f'labelled_fraction must be in [0, 1], got {labelled_fraction}')
    labelled = int(round(batch_size * labelled_fraction))
    return labelled, batch_size - labelled
