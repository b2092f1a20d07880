"""One train loader, fixed labelled / unlabelled batches: densessl.semisup.batch_composition
and the registered LabelledUnlabelledSampler."""
import itertools

import pytest

from densessl.semisup.batch_composition import (mixed_batch_indices, source_stream,
                                                split_batch_sizes)


def _take(stream, n):
    return list(itertools.islice(stream, n))


def test_every_batch_has_its_labelled_images_first():
    stream = mixed_batch_indices(5, 20, 2, 6, seed=0)
    for batch in (_take(stream, 8) for _ in range(10)):
        assert all(i < 5 for i in batch[:2]) and all(5 <= i < 25 for i in batch[2:])


def test_each_pass_is_a_permutation_and_the_stream_is_seeded():
    first = _take(source_stream(7, seed=3), 21)
    for k in range(3):
        assert sorted(first[7 * k:7 * k + 7]) == list(range(7))
    assert first == _take(source_stream(7, seed=3), 21)
    assert first != _take(source_stream(7, seed=4), 21)


def test_processes_see_disjoint_samples_of_a_pass():
    ranks = [_take(source_stream(12, seed=1, rank=r, world_size=3), 4) for r in range(3)]
    assert sorted(sum(ranks, [])) == list(range(12))


def test_split_of_a_batch_and_bad_sizes():
    assert split_batch_sizes(8, 0.5) == (4, 4) and split_batch_sizes(5, 0.2) == (1, 4)
    with pytest.raises(ValueError, match='labelled_fraction'):
        split_batch_sizes(8, 1.5)
    with pytest.raises(ValueError, match='empty'):
        next(mixed_batch_indices(0, 10, 2, 2, seed=0))


def test_registered_sampler_over_a_concat_dataset():
    import mmseg_plugins  # noqa: F401  (registration, fixes)
    from mmengine.dataset import BaseDataset, ConcatDataset
    from mmseg.registry import DATA_SAMPLERS

    class Items(BaseDataset):
        def __init__(self, n):
            self.n = n
            super().__init__(serialize_data=False)

        def load_data_list(self):
            return [dict(index=i) for i in range(self.n)]

    dataset = ConcatDataset([Items(3), Items(10)])
    sampler = DATA_SAMPLERS.build(dict(type='LabelledUnlabelledSampler', batch_size=4,
                                       labelled_fraction=0.25, seed=0), default_args=dict(
                                           dataset=dataset))
    batch = _take(iter(sampler), 4)
    assert batch[0] < 3 and all(3 <= i < 13 for i in batch[1:])
    with pytest.raises(TypeError, match='ConcatDataset'):
        DATA_SAMPLERS.build(dict(type='LabelledUnlabelledSampler', batch_size=4),
                            default_args=dict(dataset=Items(3), seed=0))
