# ReCo + ClassMix, PASCAL VOC 2012 (SBD-augmented), 60 labelled images (ReCo's
# class-balanced subset, seed 0) of the 10,582 train_aug images, the rest unlabelled; ReCo's
# README run
#   python train_semisup.py --dataset pascal --num_labels 60 --apply_aug classmix --apply_reco
#
#   python tools/train.py configs/mmseg/semisup/reco_r101_voc_60labels.py
#   bash tools/dist_train.sh configs/mmseg/semisup/reco_r101_voc_60labels.py NGPUS
# (ReCo trains on one GPU: with NGPUS the batch is 10 + 10 per GPU, NGPUS times ReCo's.)
#
# Reported (DeepLabV3+ R101, mIoU on the 1,449 val images): ReCo's README checkpoint 57.12
# (ClassMix alone 53.71, supervised 36.06).
#
# Data: data/VOCdevkit/VOC2012/JPEGImages (VOCtrainval_11-May-2012.tar) and
# SegmentationClassAug (SegmentationClassAug.zip, the 12,031 SBD-augmented label maps ReCo's
# and U2PL's READMEs link; mmseg's voc_aug converter writes only the SBD ones). Split (not
# shipped; TRAIN_AUG: a file of the 10,582 train_aug ids, e.g. VOC's
# ImageSets/Segmentation/train.txt plus mmseg's voc_aug aug.txt, or ReCo's
# dataset/pascal/train_aug.txt):
#   python tools/make_splits.py --dataset pascal_voc --root data/VOCdevkit/VOC2012 \
#       --id-list TRAIN_AUG --labelled-count 60 --class-balanced --seed 0 \
#       --out data/splits/reco/voc_60_seed0
# Another folder: --cfg-options train_dataloader.dataset.datasets.0.split_file=DIR/labeled.txt \
#   train_dataloader.dataset.datasets.1.split_file=DIR/unlabeled.txt
#
# As ReCo: labelled images rescaled by U(0.5, 1.5) of their size, reflect-padded (labels 255)
# to 321x321, random 321x321 crops, colour jitter / blur / flip; unlabelled: scale 1, crop, no
# augmentation; batch 10 + 10. Test: the whole image padded to 513x513. Differences: the test
# padding is mmseg's data preprocessor's (the mean colour, cropped off before scoring) where
# ReCo reflects; _base_/reco_r101.py; the subset is ReCo's algorithm on a deterministic order,
# so seed 0 does not pick ReCo's seed-0 images.
_base_ = ['./_base_/reco_r101.py']
data_root = 'data/VOCdevkit/VOC2012'
split = 'data/splits/reco/voc_60_seed0'
num_classes = 21
labelled_per_batch = 10
batch_size = 20  # 10 labelled + 10 unlabelled
crop_size = (321, 321)
labelled_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
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
train_set = dict(type='PascalVOCSplitDataset', data_root=data_root,
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'))
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
    dataset=dict(train_set, split_file=data_root + '/ImageSets/Segmentation/val.txt',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    # training batches: the crops; test: each image padded to 513x513 (ReCo's im_size)
    data_preprocessor=dict(size=crop_size, test_cfg=dict(size=(513, 513))),
    network=dict(num_classes=num_classes),
    num_classes=num_classes,
    labelled_per_batch=labelled_per_batch)
