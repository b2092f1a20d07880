"""VISSL collator ``dense_collator``: stacks ``dense_ssl_dataset`` samples, view-major.

Batch of N samples with V views of S x S px::

    {'data': [[view_0 (N, 3, S, S), ..., view_{V-1} (N, 3, S, S)]],
     'label': [superpixels int64 (V*N, S, S)],         # -> the loss's target
     'view_flipped': [bool (V*N,)], 'view_common_boxes': [float32 (V*N, 4)],
     'data_valid': [int64 (N,)], 'data_idx': [int64 (N,)]}

Row ``v * N + n`` of every per-view tensor is view ``v`` of image ``n``. The label is the
superpixel tensor itself, not a dict: VISSL's train step passes ``batch['label'][0]`` to the
loss and also calls ``target.size(0)``; the view geometry rides along in its own keys, which
VISSL copies into the sample as they are. Select it with
``DATA.TRAIN.COLLATE_FUNCTION: dense_collator``.
"""
import torch
from vissl.data.collators import register_collator


@register_collator('dense_collator')
def dense_collator(batch):
    """Collate a list of ``dense_ssl_dataset`` samples (see the module docstring)."""
    if not batch:
        raise ValueError('dense_collator got an empty batch')
    view_n = len(batch[0]['data'])
    for sample in batch:
        if len(sample['data']) != view_n or len(sample['label']) != 1:
            raise ValueError(f'dense_collator: sample {sample["data_idx"]} has '
                             f'{len(sample["data"])} views and {len(sample["label"])} labels; '
                             f'expected {view_n} views and one label dict (DenseSSLDataset '
                             f'samples, one data source)')
    views = [torch.stack([sample['data'][v] for sample in batch]) for v in range(view_n)]

    def view_major(key):
        """(V*N, ...) rows v * N + n from the samples' (V, ...) ``label[0][key]``."""
        return torch.stack([sample['label'][0][key] for sample in batch], dim=1).flatten(0, 1)

    return {
        'data': [views],
        'label': [view_major('superpixels')],
        'view_flipped': [view_major('flipped')],
        'view_common_boxes': [view_major('common_boxes')],
        'data_valid': [torch.tensor([s['data_valid'][0] for s in batch], dtype=torch.long)],
        'data_idx': [torch.tensor([s['data_idx'][0] for s in batch], dtype=torch.long)],
    }
