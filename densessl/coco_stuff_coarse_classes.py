"""COCO-Stuff-27: the 182 COCO-Stuff-164k labels merged into their 27 supercategories.

The label PNGs of COCO-Stuff-164k (``stuffthingmaps_trainval2017``) store ``value = COCO id - 1``:
0-90 are the 91 COCO thing ids (80 used; 11 ids such as 'street sign' were dropped by COCO
and never occur), 91-181 the 91 stuff classes, 255 = unlabelled. The coarse protocol of IIC /
PiCIE / ViCE maps every class to its COCO-Stuff supercategory. Train ids 0-11 are the 12 thing
supercategories, 12-26 the 15 stuff supercategories, in ViCE's order (indoor then outdoor
groups of the COCO-Stuff hierarchy, alphabetical inside each group).

``FINE_TO_COARSE`` is derived here from the label names and supercategories; the test checks
it against ViCE's hand-written 182-entry table.
"""
import numpy as np

IGNORE_INDEX = 255
LABEL_SUFFIX = '_labelTrainIds_27.png'  # converted label maps: <image id>_labelTrainIds_27.png

THING_SUPERCATEGORIES = (
    'electronic', 'appliance', 'food', 'furniture', 'indoor', 'kitchen',  # indoor things
    'accessory', 'animal', 'outdoor', 'person', 'sports', 'vehicle',  # outdoor things
)
STUFF_SUPERCATEGORIES = (
    'ceiling', 'floor', 'food-stuff', 'furniture-stuff', 'raw-material', 'textile', 'wall',
    'window',  # indoor stuff
    'building', 'ground', 'plant', 'sky', 'solid', 'structural', 'water',  # outdoor stuff
)
CLASSES = THING_SUPERCATEGORIES + STUFF_SUPERCATEGORIES

PALETTE = (
    (0, 0, 142), (0, 60, 100), (255, 127, 80), (160, 82, 45), (199, 21, 133), (186, 85, 211),
    (255, 215, 0), (128, 64, 0), (250, 170, 30), (220, 20, 60), (0, 206, 209), (0, 0, 230),
    (200, 200, 200), (152, 120, 90), (255, 160, 122), (205, 133, 63), (112, 128, 144),
    (216, 191, 216), (102, 102, 156), (173, 216, 230), (70, 70, 70), (128, 64, 128),
    (107, 142, 35), (70, 130, 180), (139, 137, 112), (190, 153, 153), (30, 144, 255),
)


def _group(supercategory, names):
    return [(name, supercategory) for name in names]


# (name, supercategory) of PNG value 0..181, i.e. COCO-Stuff ids 1..182 in id order.
COCO_STUFF_LABELS = tuple(
    _group('person', ['person'])
    + _group('vehicle', ['bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck',
                         'boat'])
    + _group('outdoor', ['traffic light', 'fire hydrant', 'street sign', 'stop sign',
                         'parking meter', 'bench'])
    + _group('animal', ['bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear',
                        'zebra', 'giraffe'])
    + _group('accessory', ['hat', 'backpack', 'umbrella', 'shoe', 'eye glasses', 'handbag',
                           'tie', 'suitcase'])
    + _group('sports', ['frisbee', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat',
                        'baseball glove', 'skateboard', 'surfboard', 'tennis racket'])
    + _group('kitchen', ['bottle', 'plate', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
                         'bowl'])
    + _group('food', ['banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog',
                      'pizza', 'donut', 'cake'])
    + _group('furniture', ['chair', 'couch', 'potted plant', 'bed', 'mirror', 'dining table',
                           'window', 'desk', 'toilet', 'door'])
    + _group('electronic', ['tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone'])
    + _group('appliance', ['microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'blender'])
    + _group('indoor', ['book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
                        'toothbrush', 'hair brush'])
    + [  # stuff, alphabetical (values 91..181)
        ('banner', 'textile'), ('blanket', 'textile'), ('branch', 'plant'),
        ('bridge', 'building'), ('building-other', 'building'), ('bush', 'plant'),
        ('cabinet', 'furniture-stuff'), ('cage', 'structural'), ('cardboard', 'raw-material'),
        ('carpet', 'floor'), ('ceiling-other', 'ceiling'), ('ceiling-tile', 'ceiling'),
        ('cloth', 'textile'), ('clothes', 'textile'), ('clouds', 'sky'),
        ('counter', 'furniture-stuff'), ('cupboard', 'furniture-stuff'), ('curtain', 'textile'),
        ('desk-stuff', 'furniture-stuff'), ('dirt', 'ground'), ('door-stuff', 'furniture-stuff'),
        ('fence', 'structural'), ('floor-marble', 'floor'), ('floor-other', 'floor'),
        ('floor-stone', 'floor'), ('floor-tile', 'floor'), ('floor-wood', 'floor'),
        ('flower', 'plant'), ('fog', 'water'), ('food-other', 'food-stuff'),
        ('fruit', 'food-stuff'), ('furniture-other', 'furniture-stuff'), ('grass', 'plant'),
        ('gravel', 'ground'), ('ground-other', 'ground'), ('hill', 'solid'),
        ('house', 'building'), ('leaves', 'plant'), ('light', 'furniture-stuff'),
        ('mat', 'textile'), ('metal', 'raw-material'), ('mirror-stuff', 'furniture-stuff'),
        ('moss', 'plant'), ('mountain', 'solid'), ('mud', 'ground'), ('napkin', 'textile'),
        ('net', 'structural'), ('paper', 'raw-material'), ('pavement', 'ground'),
        ('pillow', 'textile'), ('plant-other', 'plant'), ('plastic', 'raw-material'),
        ('platform', 'ground'), ('playingfield', 'ground'), ('railing', 'structural'),
        ('railroad', 'ground'), ('river', 'water'), ('road', 'ground'), ('rock', 'solid'),
        ('roof', 'building'), ('rug', 'textile'), ('salad', 'food-stuff'), ('sand', 'ground'),
        ('sea', 'water'), ('shelf', 'furniture-stuff'), ('sky-other', 'sky'),
        ('skyscraper', 'building'), ('snow', 'ground'), ('solid-other', 'solid'),
        ('stairs', 'furniture-stuff'), ('stone', 'solid'), ('straw', 'plant'),
        ('structural-other', 'structural'), ('table', 'furniture-stuff'), ('tent', 'building'),
        ('textile-other', 'textile'), ('towel', 'textile'), ('tree', 'plant'),
        ('vegetable', 'food-stuff'), ('wall-brick', 'wall'), ('wall-concrete', 'wall'),
        ('wall-other', 'wall'), ('wall-panel', 'wall'), ('wall-stone', 'wall'),
        ('wall-tile', 'wall'), ('wall-wood', 'wall'), ('water-other', 'water'),
        ('waterdrops', 'water'), ('window-blind', 'window'), ('window-other', 'window'),
        ('wood', 'solid'),
    ])
NUM_FINE_LABELS = len(COCO_STUFF_LABELS)  # 182

# fine PNG value -> coarse train id (0..26); 255 (unlabelled) stays 255.
FINE_TO_COARSE = {value: CLASSES.index(supercategory)
                  for value, (_, supercategory) in enumerate(COCO_STUFF_LABELS)}
FINE_TO_COARSE[IGNORE_INDEX] = IGNORE_INDEX

_LOOKUP = np.full(256, IGNORE_INDEX, dtype=np.uint8)
_IS_KNOWN = np.zeros(256, dtype=bool)
for _fine, _coarse in FINE_TO_COARSE.items():
    _LOOKUP[_fine], _IS_KNOWN[_fine] = _coarse, True


class LabelValueError(ValueError):
    """A COCO-Stuff label map holds a value that is not a COCO-Stuff-164k label."""


def to_coarse(fine, source='<array>'):
    """Map a COCO-Stuff-164k label map (H, W) uint8 with values 0-181 / 255 to train ids 0-26 / 255.

    ``source`` names the file in the error raised for any other value.
    """
    fine = np.asarray(fine)
    if fine.dtype != np.uint8:
        if fine.size and (fine.min() < 0 or fine.max() > 255):
            bad = np.unique(fine[(fine < 0) | (fine > 255)])
            raise LabelValueError(_bad_values_message(source, bad))
        fine = fine.astype(np.uint8)
    known = _IS_KNOWN[fine]
    if not known.all():
        raise LabelValueError(_bad_values_message(source, np.unique(fine[~known])))
    return _LOOKUP[fine]


def _bad_values_message(source, bad):
    shown = ', '.join(str(v) for v in bad[:10]) + (' ...' if len(bad) > 10 else '')
    return (f'{source}: label value(s) {shown} are not COCO-Stuff-164k labels (expected '
            f'0-{NUM_FINE_LABELS - 1} or {IGNORE_INDEX} = unlabelled). Is this the single-channel '
            f'stuffthingmaps_trainval2017 label PNG (not a colour visualisation or an already '
            f'converted *_labelTrainIds* file)?')
