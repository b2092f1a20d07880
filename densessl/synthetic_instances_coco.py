"""COCO instance annotations of the synthetic scenes' thing classes (car, person, pole).

The instance maps ``*_gtFine_instanceIds.png`` (``densessl.synthetic_scenes``) of a labelled
split become one COCO JSON, ``ROOT/annotations/instances_<split>.json``, which detectron2
reads with its own ``load_coco_json`` (``d2_plugins/datasets.py``)::

    images       file_name (relative to ROOT/leftImg8bit/<split>), height, width, id
    annotations  segmentation (compressed RLE, counts a str), area, bbox [x, y, w, h],
                 iscrowd 0, category_id, image_id, id
    categories   id, name: the thing classes, COCO category id = train id (5, 6, 7)

Framework-free: numpy, PIL and pycocotools.
"""
import json
import os.path as osp

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from densessl import synthetic_scenes as scenes
from densessl.atomic_io import atomic_write_json

THING_CLASSES = tuple((train_id, scenes.CLASSES[train_id]) for train_id in scenes.THING_IDS)
# Smaller instances (slivers of an object that a later one covers almost completely) are
# not annotated: too small to detect, and their boxes would be noise.
MIN_INSTANCE_AREA = 4  # pixels
REGENERATE = 'python tools/gen_synthetic_scenes.py --out {root} --force'


def default_json_path(root, split):
    return osp.join(root, 'annotations', f'instances_{split}.json')


# ----------------------------------------------------------------------------- one image
def _mismatch_message(ids, labels, bad, path):
    y, x = (int(v[0]) for v in np.nonzero(bad))
    instance_id, label = int(ids[y, x]), int(labels[y, x])
    label_name = scenes.CLASSES[label] if label < len(scenes.CLASSES) else 'void'
    return (f'{path}: the instance map does not match the semantic label map at '
            f'{int(bad.sum())} pixels, e.g. (y={y}, x={x}): instance id {instance_id}, label '
            f'{label} ({label_name}). Thing pixels (car, person, pole) must hold '
            f'train_id * {scenes.INSTANCE_ID_OFFSET} + k, all others their label. The set is '
            f'stale or corrupted: regenerate it with {REGENERATE.format(root="ROOT")}')


def check_maps_agree(ids, labels, path):
    """Raise ValueError naming ``path`` unless instance ids (H, W) and labels (H, W) agree:
    ``id // 1000 == label`` (a thing class) on thing pixels, ``id == label`` elsewhere."""
    if ids.shape != labels.shape:
        raise ValueError(f'{path}: instance map of shape {ids.shape}, label map of shape '
                         f'{labels.shape}. Regenerate the set with '
                         f'{REGENERATE.format(root="ROOT")}')
    has_thing_id = ids >= scenes.INSTANCE_ID_OFFSET
    implied_label = np.where(has_thing_id, ids // scenes.INSTANCE_ID_OFFSET, ids)
    bad = implied_label != labels
    bad |= has_thing_id & ~np.isin(implied_label, scenes.THING_IDS)  # e.g. 1000: building
    bad |= ~has_thing_id & np.isin(labels, scenes.THING_IDS)  # a thing pixel without instance
    if bad.any():
        raise ValueError(_mismatch_message(ids, labels, bad, path))


def instances_from_maps(instance_map, label_map, path_for_errors):
    """The thing instances of one image: [(category_id, mask bool (H, W)), ...] by instance id.

    instance_map (H, W) int: Cityscapes-style instance ids; label_map (H, W): train ids.
    Raises ValueError naming ``path_for_errors`` when the two maps disagree.
    """
    ids = np.asarray(instance_map, np.int64)
    labels = np.asarray(label_map, np.int64)
    check_maps_agree(ids, labels, path_for_errors)
    thing_ids = [int(i) for i in np.unique(ids) if i >= scenes.INSTANCE_ID_OFFSET]
    return [(i // scenes.INSTANCE_ID_OFFSET, ids == i) for i in thing_ids]


def _rle_annotation(mask, category_id, image_id, annotation_id):
    """A COCO annotation of one mask bool (H, W): compressed RLE, area, box [x, y, w, h]."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(segmentation=dict(size=[int(s) for s in rle['size']],
                                  counts=rle['counts'].decode('ascii')),
                area=int(mask_utils.area(rle)),
                bbox=[float(v) for v in mask_utils.toBbox(rle)],
                iscrowd=0, category_id=int(category_id), image_id=image_id, id=annotation_id)


# ----------------------------------------------------------------------------- files
def _missing_file_error(path, what, root):
    return FileNotFoundError(
        f'{path}: no such {what}. Generate the set with python tools/gen_synthetic_scenes.py '
        f'--out {root} --force (a set made before instance maps existed, generator version < '
        f'{scenes.GENERATOR_VERSION}, has none).')


def _read_png(path, what, root):
    """The pixels of a PNG: (H, W) or (H, W, 3)."""
    if not osp.isfile(path):
        raise _missing_file_error(path, what, root)
    with Image.open(path) as img:
        return np.array(img)


def _image_size(path, root):
    """(height, width) of an image, from its header."""
    if not osp.isfile(path):
        raise _missing_file_error(path, 'image', root)
    with Image.open(path) as img:
        return img.height, img.width


def split_size(root, split):
    """How many images ``split`` has, from ``ROOT/meta.json`` (written last by the generator)."""
    path = scenes.meta_path(root)
    if not osp.isfile(path):
        raise _missing_file_error(path, 'meta.json (the set is missing or incomplete)', root)
    with open(path) as f:
        meta = json.load(f)
    return scenes.SyntheticScenesConfig(
        **{k: meta[k] for k in ('num_train', 'num_val', 'num_unlabeled')}).count(split)


def _image_instances(root, split, index):
    """(image entry without id, [(category_id, mask (H, W)), ...]) of one generator index."""
    image_file = scenes.image_path(root, split, index)
    instance_file = scenes.instance_path(root, split, index)
    height, width = _image_size(image_file, root)
    ids = _read_png(instance_file, 'instance map', root)
    labels = _read_png(scenes.label_path(root, split, index), 'label map', root)
    if ids.shape != (height, width):
        raise ValueError(f'{instance_file}: shape {ids.shape}, but its image {image_file} is '
                         f'{(height, width)}. Regenerate the set with '
                         f'{REGENERATE.format(root=root)}')
    entry = dict(file_name=osp.relpath(image_file, osp.join(root, 'leftImg8bit', split)),
                 height=height, width=width)
    return entry, instances_from_maps(ids, labels, instance_file)


def coco_dict_for_split(root, split, num_images=None):
    """The COCO dict of the thing instances of a labelled split ('train' or 'val').

    Images are the generator's indices 0..num_images-1 (default: the count in
    ``ROOT/meta.json``) in index order, image id = index + 1, so files left over from a larger
    earlier set are not picked up. Instances of fewer than ``MIN_INSTANCE_AREA`` (4) pixels are
    skipped; ``info['small_instances_skipped']`` counts them. Raises FileNotFoundError for a
    missing image / label / instance map, ValueError for maps that disagree.
    """
    if split not in scenes.LABELLED_SPLITS:
        raise ValueError(f'split {split!r} has no instance maps; labelled splits: '
                         f'{scenes.LABELLED_SPLITS}')
    num_images = split_size(root, split) if num_images is None else num_images
    images, annotations, skipped = [], [], 0
    for index in range(num_images):
        entry, instances = _image_instances(root, split, index)
        images.append(dict(entry, id=index + 1))
        for category_id, mask in instances:
            if mask.sum() < MIN_INSTANCE_AREA:
                skipped += 1
                continue
            annotations.append(_rle_annotation(mask, category_id, index + 1,
                                               len(annotations) + 1))
    info = dict(description=f'densessl synthetic scenes, {split}: thing instances',
                min_instance_area=MIN_INSTANCE_AREA, small_instances_skipped=skipped)
    categories = [dict(id=train_id, name=name) for train_id, name in THING_CLASSES]
    return dict(info=info, images=images, annotations=annotations, categories=categories)


def coco_counts(coco):
    """{'images', 'annotations', 'small_instances_skipped', 'per_category': {name: n}}."""
    per_category = {name: 0 for _, name in THING_CLASSES}
    names = dict(THING_CLASSES)
    for ann in coco['annotations']:
        per_category[names[ann['category_id']]] += 1
    return dict(images=len(coco['images']), annotations=len(coco['annotations']),
                small_instances_skipped=coco['info']['small_instances_skipped'],
                per_category=per_category)


def write_coco_json(root, split, out_path=None, num_images=None):
    """Write the COCO JSON of ``split`` atomically (default ``ROOT/annotations/
    instances_<split>.json``). Returns (path, counts) with counts as ``coco_counts``."""
    out_path = out_path or default_json_path(root, split)
    coco = coco_dict_for_split(root, split, num_images)
    atomic_write_json(coco, out_path)
    return out_path, coco_counts(coco)


def check_coco_images(json_path, image_root):
    """Raise FileNotFoundError naming ``json_path``, the first missing image and how many are
    missing, unless every image the JSON lists exists under ``image_root``. Returns the count.

    detectron2's loader would only fail later, inside a data-loader worker."""
    if not osp.isfile(json_path):
        raise FileNotFoundError(f'{json_path}: no such COCO JSON. Write it with python '
                                f'tools/convert_datasets/synthetic_to_coco.py ROOT')
    with open(json_path) as f:
        images = json.load(f)['images']
    missing = [p for p in (osp.join(image_root, im['file_name']) for im in images)
               if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f'{json_path}: {len(missing)} of the {len(images)} images it lists are missing '
            f'under {image_root}, e.g. {missing[0]}. Is image_root the folder the JSON was '
            f'written for (ROOT/leftImg8bit/<split>)? Otherwise regenerate the set: '
            f'{REGENERATE.format(root="ROOT")}')
    return len(images)
