"""MMSeg data sets of the semi-supervised protocols (ReCo, U2PL), each restricted by a split
file: ``PascalVOCSplitDataset``, ``CityscapesSplitDataset``, ``SUNRGBDDataset``.

``split_file``: one image id per line (``tools/make_splits.py`` writes ``labeled.txt`` /
``unlabeled.txt``; U2PL's ``data/splits/.../labeled.txt`` drop in: a line may also be U2PL's
Cityscapes path ``leftImg8bit/train/<city>/<id>_leftImg8bit.png`` or a file name,
``densessl.semisup.label_subsets.id_from_u2pl_line``). The data set is the split's images,
in the file's order. Checked when the data set is built, before any training:

- a missing data root or image / label folder: ``DatasetNotFoundError`` naming the folder and
  where the data comes from (``how_to_create``);
- a missing split file: ``SplitError`` naming it and how to write one;
- an id without an image, or without a label map: ``SplitError`` naming the split file, the
  line, the id and the file that was expected;
- a duplicated id: ``SplitError`` naming both lines.

Ids: VOC ``2007_000032``; Cityscapes ``aachen_000000_000019`` (the file stem without
``_leftImg8bit.png``); SUN RGB-D ``img-005051`` (the file stem; a bare number ``5051``, ReCo's
own index, is read as ``img-005051``).
"""
import os
import os.path as osp

from mmseg.datasets import BaseSegDataset, CityscapesDataset, PascalVOCDataset
from mmseg.registry import DATASETS

from densessl.semisup.label_subsets import SplitError, id_from_u2pl_line, read_split
from mmseg_plugins.datasets.checked_folders import CheckedFoldersMixin, DatasetNotFoundError

MAKE_SPLITS = 'python tools/make_splits.py'


def _line_numbers(path, line_to_id):
    """{id: line number} of a split file (the first line of each id)."""
    numbers = {}
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                numbers.setdefault(line_to_id(line.strip()), n)
    return numbers


class _SplitFileDataset(CheckedFoldersMixin, BaseSegDataset):
    """BaseSegDataset over ``data_prefix`` restricted to ``split_file`` (module docstring).

    Subclasses set ``how_to_create(root)`` / ``how_to_split()`` and may override
    ``image_id`` / ``expected_image_path`` / ``line_to_id``.

    Args:
        split_file (str | None): the split (path as given, not joined to ``data_root``);
            None = every image of the image folder.
        require_labels (bool): every listed image must have its label map (default True: the
            protocols' unlabelled images have labels too, and the pipelines load them).
    """
    split_required = False

    def __init__(self, split_file=None, require_labels=True, **kwargs):
        if split_file is None and self.split_required:
            raise ValueError(f'{type(self).__name__} needs split_file= (one image id per '
                             f'line). {self.how_to_split()}')
        self.split_file = split_file
        self.require_labels = require_labels
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ ids and paths
    def line_to_id(self, line):
        return id_from_u2pl_line(line)

    def image_id(self, img_path):
        name = osp.basename(img_path)
        return name[:-len(self.img_suffix)] if name.endswith(self.img_suffix) else name

    def expected_image_path(self, image_id):
        return osp.join(self.data_prefix.get('img_path', ''), image_id + self.img_suffix)

    def required_folders(self):
        folders = [('image folder', self.data_prefix.get('img_path', ''))]
        if self.require_labels:
            folders.append(('label folder', self.data_prefix.get('seg_map_path', '')))
        return folders

    def how_to_split(self):
        return f'Write one with {MAKE_SPLITS} (see its --help) or use a copy of the ' \
               "original's split files."

    # ------------------------------------------------------------------ listing
    def load_data_list(self):
        data_list = super().load_data_list()  # checks root and folders, lists the images
        by_id = {self.image_id(d['img_path']): d for d in data_list}
        if self.split_file is None:
            chosen = [(None, i) for i in sorted(by_id)]
            data_list = [by_id[i] for _, i in chosen]
        else:
            if not osp.isfile(self.split_file):
                raise SplitError(f'{type(self).__name__}: split file '
                                 f'{osp.abspath(self.split_file)} does not exist. '
                                 f'{self.how_to_split()}', self.split_file)
            try:
                ids = read_split(self.split_file, available_ids=by_id,
                                 line_to_id=self.line_to_id)
            except SplitError as error:
                if error.image_id is not None and error.image_id not in by_id:
                    raise SplitError(
                        f'{type(self).__name__}: {error}: no image '
                        f'{osp.abspath(self.expected_image_path(error.image_id))}',
                        error.path, error.image_id) from None
                raise
            lines = _line_numbers(self.split_file, self.line_to_id)
            chosen = [(lines[i], i) for i in ids]
            data_list = [by_id[i] for i in ids]
        if self.require_labels:
            for (line, image_id), info in zip(chosen, data_list):
                if not osp.isfile(info['seg_map_path']):
                    where = (f'{self.split_file}: line {line}: image id {image_id!r}'
                             if line is not None else f'image {info["img_path"]}')
                    raise SplitError(f'{type(self).__name__}: {where} has no label map '
                                     f'{osp.abspath(info["seg_map_path"])}. '
                                     f'{self.how_to_create(self.data_root)}',
                                     self.split_file, image_id)
        return data_list


@DATASETS.register_module()
class PascalVOCSplitDataset(_SplitFileDataset):
    """PASCAL VOC 2012 with the SBD-augmented labels (ReCo's and U2PL's layout)::

        ROOT/JPEGImages/{id}.jpg
        ROOT/SegmentationClassAug/{id}.png     class ids 0..20, 255 = ignore

    21 classes, mmseg's VOC metainfo. ``split_file`` is required (VOC's JPEGImages also holds
    the 5,000+ images without segmentation labels): the labelled / unlabelled split of the
    10,582 train_aug images, or the 1,449 ids of ``ROOT/ImageSets/Segmentation/val.txt``.
    """
    METAINFO = PascalVOCDataset.METAINFO
    split_required = True

    def __init__(self, data_prefix=dict(img_path='JPEGImages',
                                        seg_map_path='SegmentationClassAug'),
                 img_suffix='.jpg', seg_map_suffix='.png', **kwargs):
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(data_prefix=data_prefix, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, **kwargs)

    def how_to_create(self, root):
        root = root or 'ROOT'
        return ('PASCAL VOC 2012: extract JPEGImages from VOCtrainval_11-May-2012.tar '
                '(host.robots.ox.ac.uk/pascal/VOC/voc2012/) and SegmentationClassAug from '
                "SegmentationClassAug.zip (the SBD-augmented labels ReCo's and U2PL's READMEs "
                f'link: 12,031 PNGs of class ids, val included) into {root}/')

    def how_to_split(self):
        return ('Val: ROOT/ImageSets/Segmentation/val.txt. Train: U2PL\'s '
                'data/splits/pascal/<size>/{labeled,unlabeled}.txt, or ReCo\'s class-balanced '
                f'subsets: {MAKE_SPLITS} --dataset pascal_voc --root ROOT --id-list '
                'TRAIN_AUG_IDS --labelled-count 60 --class-balanced --seed 0 --out OUT')


@DATASETS.register_module()
class CityscapesSplitDataset(_SplitFileDataset):
    """Cityscapes in mmseg's layout::

        ROOT/leftImg8bit/{train,val}/<city>/<id>_leftImg8bit.png
        ROOT/gtFine/{train,val}/<city>/<id>_gtFine_labelTrainIds.png   0..18, 255 = ignore

    (``*_labelTrainIds.png`` are written by mmseg's
    ``tools/dataset_converters/cityscapes.py``). 19 classes, mmseg's Cityscapes metainfo.
    ``split_file`` None = every image of the folder (the val set).
    """
    METAINFO = CityscapesDataset.METAINFO

    def __init__(self, data_prefix=dict(img_path='leftImg8bit/train',
                                        seg_map_path='gtFine/train'),
                 img_suffix='_leftImg8bit.png', seg_map_suffix='_gtFine_labelTrainIds.png',
                 **kwargs):
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(data_prefix=data_prefix, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, **kwargs)

    def expected_image_path(self, image_id):
        city = image_id.split('_', 1)[0]  # Cityscapes ids start with their city
        return osp.join(self.data_prefix.get('img_path', ''), city, image_id + self.img_suffix)

    def how_to_create(self, root):
        root = root or 'data/cityscapes'
        return ('Cityscapes: download leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip '
                f'(www.cityscapes-dataset.com), unzip both into {root}/, then write the train-id '
                "labels with mmsegmentation's converter: pip install cityscapesscripts; python "
                f'tools/dataset_converters/cityscapes.py {root} --nproc 8')

    def how_to_split(self):
        return ("U2PL's data/splits/cityscapes/<size>/{labeled,unlabeled}.txt, or ReCo's "
                f'class-balanced subsets: {MAKE_SPLITS} --dataset cityscapes --root ROOT '
                '--labelled-count 20 --class-balanced --seed 0 --out OUT')


SUN_TRAIN_IMAGES = 'SUNRGBD-train_images'
SUN_TEST_IMAGES = 'SUNRGBD-test_images'
SUN_LABELS = 'sunrgbd_train_test_labels'


@DATASETS.register_module()
class SUNRGBDDataset(_SplitFileDataset):
    """SUN RGB-D (37 classes) in the layout ReCo's ``dataset/sun_preprocess.py`` leaves::

        ROOT/SUNRGBD-train_images/img-{:06d}.jpg      5,285 train + the test images not in
                                                      ReCo's dataset/sun/test_idx.txt
        ROOT/SUNRGBD-test_images/img-{:06d}.jpg       the remaining test images
        ROOT/sunrgbd_train_test_labels/img-{:06d}.png 0 = void, 1..37 = classes (train and
                                                      test in one folder)

    everything resized to 512 x 384 (ReCo's preprocessing renames the train images to
    ``img-{i + 5050}``, so train and test ids are disjoint, and each image id is its label's).

    **Labels**: ReCo maps ``label - 1`` (0 -> 255). Here the files are not rewritten: the
    data set sets ``reduce_zero_label=True`` and the loading pipeline
    (``LoadAnnotations`` / ``LoadAnnotationsChecked`` with ``reduce_zero_label`` left at
    None, which takes the data set's) maps 0 -> 255 and c -> c - 1, the same map.

    A train folder that shares ids with the test folder has not been through ReCo's
    preprocessing (train and test ids would then point to the wrong label maps): refused.
    """
    METAINFO = dict(
        classes=('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door',
                 'window', 'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves',
                 'curtain', 'dresser', 'pillow', 'mirror', 'floor_mat', 'clothes', 'ceiling',
                 'books', 'fridge', 'tv', 'paper', 'towel', 'shower_curtain', 'box',
                 'whiteboard', 'person', 'night_stand', 'toilet', 'sink', 'lamp', 'bathtub',
                 'bag'),
        # generated colours (distinct, deterministic); ids as the label files minus 1
        palette=[[(67 * i + 40) % 256, (131 * i + 90) % 256, (199 * i + 160) % 256]
                 for i in range(37)])

    def __init__(self, data_prefix=dict(img_path=SUN_TRAIN_IMAGES, seg_map_path=SUN_LABELS),
                 img_suffix='.jpg', seg_map_suffix='.png', **kwargs):
        kwargs.setdefault('reduce_zero_label', True)
        super().__init__(data_prefix=data_prefix, img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix, **kwargs)

    def line_to_id(self, line):
        line = line.strip()
        return f'img-{int(line):06d}' if line.isdigit() else id_from_u2pl_line(line)

    def how_to_create(self, root):
        root = root or 'data/sun_rgbd'
        return ('SUN RGB-D: download SUNRGBD-train_images.tgz and SUNRGBD-test_images.tgz '
                '(www.doc.ic.ac.uk/~ahanda/) and sunrgbd_train_test_labels.tar.gz '
                '(github.com/ankurhanda/sunrgbd-meta-data), extract them into '
                f"{root}/, then run ReCo's dataset/sun_preprocess.py on it (github.com/lorenmt/"
                'reco; it works on ./dataset/sun, with its dataset/sun/test_idx.txt: renames, '
                'moves the extra test images into train, resizes to 512x384), or use ReCo\'s '
                'pre-processed download linked from its README')

    def how_to_split(self):
        return (f'{MAKE_SPLITS} --dataset sun_rgbd --root ROOT --labelled-count 50 '
                '--class-balanced --min-classes 1 --seed 0 --out OUT')

    def load_data_list(self):
        data_list = super().load_data_list()
        img_dir = self.data_prefix.get('img_path', '')
        here = osp.basename(osp.normpath(img_dir))
        other = {SUN_TRAIN_IMAGES: SUN_TEST_IMAGES, SUN_TEST_IMAGES: SUN_TRAIN_IMAGES}.get(here)
        if other and osp.isdir(osp.join(osp.dirname(osp.normpath(img_dir)), other)):
            theirs = set(os.listdir(osp.join(osp.dirname(osp.normpath(img_dir)), other)))
            shared = sorted(n for n in os.listdir(img_dir)
                            if n.endswith(self.img_suffix) and n in theirs)
            if shared:
                raise DatasetNotFoundError(
                    f'{type(self).__name__}: {img_dir} and its sibling {other} share '
                    f'{len(shared)} file names (e.g. {shared[0]}): the data set has not been '
                    f"through ReCo's preprocessing, and train images would read the test "
                    f'images\' label maps. {self.how_to_create(self.data_root)}')
        return data_list
