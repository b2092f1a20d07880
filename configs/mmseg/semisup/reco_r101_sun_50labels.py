# ReCo + ClassMix, SUN RGB-D (37 classes), 50 labelled images (class-balanced, seed 0), the
# rest of the train images unlabelled; ReCo's README run
#   python train_semisup.py --dataset sun --num_labels 50 --apply_aug classmix --apply_reco
#
#   python tools/train.py configs/mmseg/semisup/reco_r101_sun_50labels.py
#   bash tools/dist_train.sh configs/mmseg/semisup/reco_r101_sun_50labels.py NGPUS
# (ReCo trains on one GPU: with NGPUS the batch is 5 + 5 per GPU, NGPUS times ReCo's.)
#
# Reported (paper, via secondary summaries that disagree; DeepLabV3+ R101, mIoU on the test
# images): ReCo + ClassMix 29.65 (ClassMix alone 28.42); another summary quotes 30.5. Check
# the paper (arXiv 2104.04465v4, Table 1) before comparing.
#
# Data: SUN RGB-D in the layout ReCo's dataset/sun_preprocess.py leaves (data/sun_rgbd/
# SUNRGBD-train_images, SUNRGBD-test_images, sunrgbd_train_test_labels, all 512x384; see
# SUNRGBDDataset). Labels are read as ReCo maps them (label - 1, 0 -> 255) by the loading
# pipeline (reduce_zero_label), the files are not rewritten. Split (not shipped):
#   python tools/make_splits.py --dataset sun_rgbd --root data/sun_rgbd --labelled-count 50 \
#       --class-balanced --min-classes 1 --seed 0 --out data/splits/reco/sun_50_seed0
# Another folder: --cfg-options train_dataloader.dataset.datasets.0.split_file=DIR/labeled.txt \
#   train_dataloader.dataset.datasets.1.split_file=DIR/unlabeled.txt
#
# As ReCo: labelled images rescaled by U(0.5, 1.5), reflect-padded to 321x321, random
# 321x321 crops, colour jitter / blur / flip; batch 5 + 5; test: the whole 384x512 image
# padded to 385x513. Differences: the subset comes from the Pascal / Cityscapes acceptance
# rule (make_splits --class-balanced, at least 1 class, filling the least-covered class),
# not ReCo's SUN sampler (per-class image lists), so it is not ReCo's subset; the test
# padding is the mean colour (ReCo reflects); _base_/reco_r101.py.
_base_ = ['./_base_/reco_r101.py']
data_root = 'data/sun_rgbd'
split = 'data/splits/reco/sun_50_seed0'
num_classes = 37
labelled_per_batch = 5
batch_size = 10  # 5 labelled + 5 unlabelled
crop_size = (321, 321)
labelled_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),  # label - 1 (data set's)
    dict(type='RandomRescale', scale_ranges=[(0.5, 1.5)], backend='pillow'),
    dict(type='PadForCrop', crop_size=crop_size, img_padding_mode='reflect'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='ReCoColourAugment', jitter_prob=0.8, blur_prob=0.5),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
unlabelled_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    # ReCo rescales the pseudo-labelled crop after teacher inference (batch_transform);
    # here the unlabelled image is rescaled before it, over the same range
    dict(type='RandomRescale', scale_ranges=[(0.5, 1.5)], backend='pillow'),
    dict(type='PadForCrop', crop_size=crop_size, img_padding_mode='reflect'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_set = dict(type='SUNRGBDDataset', data_root=data_root,
                 data_prefix=dict(img_path='SUNRGBD-train_images',
                                  seg_map_path='sunrgbd_train_test_labels'))
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='LabelledUnlabelledSampler', batch_size=batch_size,
                 labelled_fraction=labelled_per_batch / batch_size),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(train_set, split_file=split + '/labeled.txt', pipeline=labelled_pipeline),
        dict(train_set, split_file=split + '/unlabeled.txt', pipeline=unlabelled_pipeline)]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SUNRGBDDataset', data_root=data_root, pipeline=test_pipeline,
                 data_prefix=dict(img_path='SUNRGBD-test_images',
                                  seg_map_path='sunrgbd_train_test_labels')))
test_dataloader = val_dataloader
model = dict(
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size=(385, 513))),
    network=dict(num_classes=num_classes),
    num_classes=num_classes,
    labelled_per_batch=labelled_per_batch)
