"""VISSL data source ``synthetic_scenes``: the images of the built-in synthetic street scenes.

The data path is the root written by ``tools/gen_synthetic_scenes.py`` (Cityscapes layout,
see ``densessl.synthetic_scenes``). Pretraining (``DATA.TRAIN``) reads the unlabelled pool
``leftImg8bit/train_extra``; ``DATA.TEST`` reads ``leftImg8bit/val``. Returns
``(PIL RGB image, True)`` as VISSL data sources do.

Config::

    DATA.TRAIN.DATA_SOURCES: [synthetic_scenes]
    DATA.TRAIN.DATASET_NAMES: [synthetic_scenes]      # catalog entry: <repo>/data/synthetic_scenes
    DATA.TRAIN.DATA_PATHS: [/path/to/synthetic_scenes]  # optional, overrides the catalog
"""
import glob
import os.path as osp

from torch.utils.data import Dataset
from vissl.data import DATA_SOURCES_WITH_SUBSET_SUPPORT, DATASET_SOURCE_MAP, VisslDatasetCatalog

from densessl.run_manifest import REPO_ROOT
from vissl_plugins.data.image_files import load_rgb_image

SUBSET_OF_SPLIT = {'TRAIN': 'train_extra', 'TEST': 'val'}
DEFAULT_ROOT = osp.join(REPO_ROOT, 'data', 'synthetic_scenes')


class SyntheticScenesSource(Dataset):
    def __init__(self, cfg, path, split, dataset_name, data_source='synthetic_scenes'):
        super().__init__()
        self.cfg, self.split, self.data_source = cfg, split, data_source
        folder = osp.join(path, 'leftImg8bit', SUBSET_OF_SPLIT[split])
        self.image_paths = sorted(glob.glob(osp.join(folder, '*', '*_leftImg8bit.png')))
        if not self.image_paths:
            raise FileNotFoundError(
                f'data source synthetic_scenes: no images under {folder}. Generate the set '
                f'with: python tools/gen_synthetic_scenes.py --out {path}')

    def num_samples(self):
        return len(self.image_paths)

    def __len__(self):
        return len(self.image_paths)

    def __getitem__(self, idx):
        return load_rgb_image(self.image_paths[idx]), True


def register():
    """Add the source to VISSL's source map and the data set to its catalog (idempotent)."""
    DATASET_SOURCE_MAP['synthetic_scenes'] = SyntheticScenesSource
    DATA_SOURCES_WITH_SUBSET_SUPPORT.add('synthetic_scenes')
    if not VisslDatasetCatalog.has_data('synthetic_scenes'):
        VisslDatasetCatalog.register_data('synthetic_scenes', {
            'train': [DEFAULT_ROOT, '<unused>'], 'val': [DEFAULT_ROOT, '<unused>']})


register()
