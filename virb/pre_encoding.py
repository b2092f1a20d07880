"""Pre-encoding: run a frozen encoder once over an image-level task's train and test sets,
keep the outputs its head reads in fp16 on the training device, and share them between every
training config of the grid (the point of ViRB's grid search: a config then costs only its
head's training).

- ``encode_dataset``: encoder outputs ``keys`` of a whole dataset -> ``Encoded`` (features
  {key: (N, ...) fp16 on ``device``}, targets (N, ...)). ``repeats`` > 1 encodes the set that
  many times (``num_dataset_repeats``: passes that see different augmentations).
- ``EncodedLoader``: batches of an ``Encoded`` set, a new permutation every epoch from a
  seeded generator; the train loader drops the last partial batch (as the original).
- ``EncodingCache``: optional on-disk cache (``--cache-dir``), one file per (encoder
  checkpoint digest, task, task preprocessing, keys, repeats, split); a hit skips encoding
  entirely (logged as ``cache hit``).
"""
import hashlib
import json
import os
import os.path as osp
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from densessl.atomic_io import atomic_torch_save


@dataclass
class Encoded:
    """features {key: (N, ...) fp16}, targets (N, ...)."""
    features: dict
    targets: torch.Tensor

    def __len__(self):
        return len(self.targets)

    def to(self, device):
        return Encoded({k: v.to(device) for k, v in self.features.items()},
                       self.targets.to(device))


@torch.no_grad()
def encode_dataset(encoder, dataset, keys, batch_size=64, device='cpu', repeats=1,
                   progress=None):
    """Encode ``dataset`` ((image (3, H, W), target) items) with ``encoder`` in eval mode ->
    ``Encoded`` on ``device``, features in fp16. ``progress(n)`` is called per batch."""
    encoder.eval()
    feats, targets = {k: [] for k in keys}, []
    for _ in range(repeats):
        for images, target in DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=0):
            out = encoder(images.to(device))
            for k in keys:
                feats[k].append(out[k].to(torch.float16))
            targets.append(target.to(device))
            if progress is not None:
                progress(len(images))
    return Encoded({k: torch.cat(v) for k, v in feats.items()}, torch.cat(targets))


class EncodedLoader:
    """Iterate an ``Encoded`` set in batches of ``batch_size``: ``(features dict, targets)``.
    ``shuffle``: a new permutation per epoch (``generator`` seeded by the caller);
    ``drop_last``: skip the last partial batch."""

    def __init__(self, encoded, batch_size, shuffle=False, drop_last=False, generator=None):
        self.encoded, self.batch_size = encoded, batch_size
        self.shuffle, self.drop_last, self.generator = shuffle, drop_last, generator

    def __len__(self):
        n = len(self.encoded)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.encoded)
        device = self.encoded.targets.device
        order = (torch.randperm(n, generator=self.generator).to(device) if self.shuffle
                 else torch.arange(n, device=device))
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield ({k: v[index] for k, v in self.encoded.features.items()},
                   self.encoded.targets[index])


def encoding_key(encoder_id, task_name, preprocessing, keys, repeats, split):
    """The cache key: sha256 over what the features depend on."""
    text = json.dumps([encoder_id, task_name, preprocessing, sorted(keys), repeats, split])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class EncodingCache:
    """Encoded sets on disk under ``folder`` (None: no cache), named by ``encoding_key``."""

    def __init__(self, folder):
        self.folder = folder

    def path(self, key):
        return osp.join(self.folder, f'{key}.pt')

    def load(self, key, device):
        if not self.folder or not osp.isfile(self.path(key)):
            return None
        data = torch.load(self.path(key), map_location='cpu', weights_only=True)
        return Encoded(data['features'], data['targets']).to(device)

    def save(self, key, encoded, meta):
        if not self.folder:
            return
        os.makedirs(self.folder, exist_ok=True)
        cpu = encoded.to('cpu')
        atomic_torch_save({'features': cpu.features, 'targets': cpu.targets, 'meta': meta},
                          self.path(key))


def encode_task(encoder, encoder_id, task, datasets, keys, device, cache, repeats=1,
                batch_size=64, log=print, progress=None):
    """(train ``Encoded``, test ``Encoded``, seconds spent encoding) for ``task``, from
    ``cache`` when it holds them. The train set is encoded ``repeats`` times."""
    start, out = time.time(), []
    for split, dataset, reps in zip(('train', 'test'), datasets, (repeats, 1)):
        key = encoding_key(encoder_id, task.name, task.preprocessing_id(), keys, reps, split)
        encoded = cache.load(key, device)
        if encoded is not None:
            log(f'encoding {task.name} {split}: cache hit {cache.path(key)} '
                f'({len(encoded)} items)')
        else:
            log(f'encoding {task.name} {split}: {len(dataset) * reps} images, keys '
                f'{", ".join(keys)}')
            encoded = encode_dataset(encoder, dataset, keys, batch_size, device, reps, progress)
            cache.save(key, encoded, {'encoder': encoder_id, 'task': task.name,
                                      'split': split, 'repeats': reps})
        out.append(encoded)
    return out[0], out[1], time.time() - start
