"""The built-in synthetic scenes as detectron2 data sets: ``synthetic_scenes_{train,val}``.

Instances of the thing classes (car, person, pole) come from the COCO JSON the generator
writes (``ROOT/annotations/instances_{train,val}.json``, ``densessl.synthetic_instances_coco``)
and go through detectron2's own ``load_coco_json`` and ``COCOEvaluator``. ROOT is
``$DENSESSL_SYNTHETIC_SCENES`` or ``data/synthetic_scenes`` (relative to the working
directory, like the MMSeg configs' ``data_root``). Before detectron2 reads a split, the JSON
and every image it names are checked, so a missing file fails here with its name instead of
deep inside a data-loader worker.

Another root under other names: ``register_synthetic_scenes(root, prefix='my_scenes')``.
"""
import os
import os.path as osp

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from densessl import synthetic_scenes
from densessl.synthetic_instances_coco import THING_CLASSES, check_coco_images

DEFAULT_ROOT = 'data/synthetic_scenes'
SPLITS = ('train', 'val')


def synthetic_scenes_root():
    return os.environ.get('DENSESSL_SYNTHETIC_SCENES', DEFAULT_ROOT)


def split_files(root, split):
    """(COCO JSON, image root) of one split."""
    return (osp.join(root, 'annotations', f'instances_{split}.json'),
            osp.join(root, 'leftImg8bit', split))


def _load_checked(name, json_file, image_root):
    if not osp.isfile(json_file):
        raise FileNotFoundError(
            f'{name}: {json_file} does not exist. Generate the synthetic scenes with their '
            f'instance annotations: python tools/gen_synthetic_scenes.py --out '
            f'{osp.dirname(osp.dirname(json_file))} (add --force to rewrite an older set), or '
            f'for a set that has instance maps: python tools/convert_datasets/synthetic_to_coco.py '
            f'{osp.dirname(osp.dirname(json_file))}')
    check_coco_images(json_file, image_root)
    return load_coco_json(json_file, image_root, name)


def register_synthetic_scenes(root=None, prefix='synthetic_scenes'):
    """Register ``<prefix>_train`` and ``<prefix>_val`` (lazily: files are read on use)."""
    root = root or synthetic_scenes_root()
    names = []
    for split in SPLITS:
        name = f'{prefix}_{split}'
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        json_file, image_root = split_files(root, split)
        DatasetCatalog.register(
            name, lambda n=name, j=json_file, i=image_root: _load_checked(n, j, i))
        MetadataCatalog.get(name).set(
            json_file=json_file, image_root=image_root, evaluator_type='coco',
            thing_classes=[c for _, c in THING_CLASSES],
            thing_colors=[list(synthetic_scenes.PALETTE[i]) for i, _ in THING_CLASSES])
        names.append(name)
    return names


register_synthetic_scenes()
