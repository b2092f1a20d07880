# ReCo + ClassMix, Cityscapes, partial labels p0: every one of the 2,975 fine train images is
# labelled, but only ONE pixel per class present in it (ReCo's "partial labels, full data
# set" mode; the labelled set = the unlabelled set = all images); ReCo's README run
#   python train_semisup_partial.py --dataset cityscapes --partial p0 --apply_aug classmix \
#       --apply_reco
#
#   python tools/train.py configs/mmseg/semisup/reco_r101_cityscapes_p0.py
#   bash tools/dist_train.sh configs/mmseg/semisup/reco_r101_cityscapes_p0.py NGPUS
# Other modes / seeds: set both views' PartialLabels (pipeline index 3), e.g.
#   --cfg-options train_dataloader.dataset.datasets.0.pipeline.3.mode=p1 \
#       train_dataloader.dataset.datasets.1.pipeline.3.mode=p1
#   (p1, p5, p25), and ...pipeline.3.seed=1 likewise (ReCo: seeds 0, 1, 2).
#
# Reported (paper, via a secondary summary; DeepLabV3+ R101, mIoU at 512x1024): ReCo + ClassMix
# 49.66, ClassMix alone 47.42.
#
# Data: as reco_r101_cityscapes_20labels.py; no split file (all train images, twice). The
# partial labels are made at load time by PartialLabels from the full labels, after the
# resize to 512x1024 (ReCo generates them on its resized labels), seeded per image id and
# seed: an image gets the same pixels in every epoch and process (ReCo draws them once from
# one numpy stream over a file listing, so its files for a seed are not these pixels).
#
# The segmentor runs ReCo's partial-label mode (model.partial_labels=True): the sparse labels
# of the unlabelled view overwrite its pseudo-labels (confidence 1 there), and the labelled
# half of the contrast takes the student's own predictions of confidence >= 0.97 where it has
# no label. Both views therefore load the SAME partial labels (PartialLabels in both
# pipelines, same mode and seed: the full labels never reach the model).
# Differences: _base_/reco_r101.py and reco_r101_cityscapes_20labels.py.
_base_ = ['./reco_r101_cityscapes_20labels.py']
num_classes = 19
crop_size = (512, 512)
stored_size = (1024, 512)
labelled_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='ResizeAsStored', scale=stored_size),
    dict(type='PartialLabels', mode='p0', seed=0),  # index 3: see the header
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='ReCoColourAugment', jitter_prob=0.8, blur_prob=0.5),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
unlabelled_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='ResizeAsStored', scale=stored_size),
    dict(type='PartialLabels', mode='p0', seed=0),  # the same pixels as the labelled view
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs'),
]
train_set = dict(type='CityscapesSplitDataset', data_root='data/cityscapes', split_file=None,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'))
train_dataloader = dict(dataset=dict(type='ConcatDataset', datasets=[
    dict(train_set, pipeline=labelled_pipeline),
    dict(train_set, pipeline=unlabelled_pipeline)]))
model = dict(partial_labels=True)
