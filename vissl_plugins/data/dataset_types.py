"""Registry of dataset *types*: which class VISSL builds for ``DATA.<split>``.

VISSL 0.1.6 always builds ``GenericSSLDataset`` (one image per sample, transforms applied
per image). Methods whose samples are more than transformed images, such as ViCE's
multi-view crops with superpixel maps, register their own dataset class here and select
it with ``DATA.TRAIN.DATASET_TYPE: <name>``. ``generic`` (the default) is VISSL's own.

The dispatch is installed into VISSL by ``vissl_plugins.compat``.
"""
from vissl.data import build_dataset as build_generic_dataset

DATASET_TYPES = {}


def register_dataset_type(name):
    """Class decorator: ``@register_dataset_type('dense_ssl_dataset')``.

    The class is built as ``cls(cfg=cfg, split=split, **kwargs)`` like GenericSSLDataset.
    """
    def register(cls):
        if name in DATASET_TYPES or name == 'generic':
            raise ValueError(f'dataset type {name!r} is already registered')
        DATASET_TYPES[name] = cls
        return cls
    return register


def build_dataset_by_type(cfg, split, **kwargs):
    """Build the dataset of ``cfg.DATA[split].DATASET_TYPE`` (``generic`` = VISSL's own)."""
    dataset_type = cfg['DATA'][split].get('DATASET_TYPE', 'generic')
    if dataset_type == 'generic':
        return build_generic_dataset(cfg, split, **kwargs)
    if dataset_type not in DATASET_TYPES:
        raise ValueError(
            f'unknown config.DATA.{split}.DATASET_TYPE {dataset_type!r}; registered types: '
            f'generic, {", ".join(sorted(DATASET_TYPES)) or "(none)"}. Import the plugin '
            f'that registers it (vissl_plugins does so for its own).')
    return DATASET_TYPES[dataset_type](cfg=cfg, split=split, **kwargs)
