"""``LabelledUnlabelledSampler``: one train loader, every batch a fixed labelled /
unlabelled mix (``densessl.semisup.batch_composition``), in the style of mmdet's
``MultiSourceSampler``::

    train_dataloader = dict(
        batch_size=8,
        sampler=dict(type='LabelledUnlabelledSampler', batch_size=8, labelled_fraction=0.5),
        dataset=dict(type='ConcatDataset', datasets=[labelled_dataset, unlabelled_dataset]))

The first ``round(batch_size * labelled_fraction)`` images of each batch are labelled.
``batch_size`` must equal the loader's (mmengine gives a sampler only the data set and seed).
Distributed runs: each process draws its own batches (disjoint within a pass).
"""
from mmengine.dataset import ConcatDataset
from mmengine.dist import get_dist_info, sync_random_seed
from mmseg.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

from densessl.semisup.batch_composition import mixed_batch_indices, split_batch_sizes


@DATA_SAMPLERS.register_module()
class LabelledUnlabelledSampler(Sampler):
    """Endless sampler over ``ConcatDataset([labelled, unlabelled])`` (see module docstring)."""

    def __init__(self, dataset, batch_size, labelled_fraction=0.5, seed=None):
        if not isinstance(dataset, ConcatDataset) or len(dataset.datasets) != 2:
            raise TypeError('LabelledUnlabelledSampler needs dataset=dict(type="ConcatDataset", '
                            'datasets=[labelled, unlabelled]), got '
                            f'{type(dataset).__name__}')
        self.num_labelled = len(dataset.datasets[0])
        self.num_unlabelled = len(dataset.datasets[1])
        self.labelled_per_batch, self.unlabelled_per_batch = split_batch_sizes(
            batch_size, labelled_fraction)
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed

    def __iter__(self):
        return mixed_batch_indices(self.num_labelled, self.num_unlabelled,
                                   self.labelled_per_batch, self.unlabelled_per_batch,
                                   self.seed, self.rank, self.world_size)

    def __len__(self):
        return self.num_labelled + self.num_unlabelled

    def set_epoch(self, epoch):
        """Endless stream: nothing to do per epoch (IterBasedTrainLoop)."""
