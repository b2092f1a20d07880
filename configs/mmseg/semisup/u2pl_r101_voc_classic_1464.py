# U2PL (CutMix), PASCAL VOC 2012 "classic": all 1,464 VOC train images labelled, the other
# 9,118 of the 10,582 train_aug images unlabelled; U2PL's experiments/pascal/1464/ours run
#   sh train.sh 4 PORT   (python -m torch.distributed.launch --nproc_per_node=4 train_semi.py
#                         --config=config.yaml --seed 2)
#
#   bash tools/dist_train.sh configs/mmseg/semisup/u2pl_r101_voc_classic_1464.py 4
#   python tools/train.py configs/mmseg/semisup/u2pl_r101_voc_classic_1464.py   (1 GPU: a
#       quarter of U2PL's batch; the learning rate is not scaled)
# Other classic sizes (92 / 183 / 366 / 732): point both split files at U2PL's folder of that
# size; U2PL keeps the schedule and changes only n_sup, which sets its epoch length:
# (10,582 - n) / 16 iterations (e.g. 92 -> 656), so also set model.u2pl.iters_per_epoch,
# model.u2pl.sup_only_iters (the teacher hook follows it), train_cfg.max_iters (80 epochs)
# and param_scheduler.0.end.
#
# Reported (U2PL's README, R101 DeepLabV3+, mIoU on the 1,449 val images): 79.49 (SupOnly
# 72.50). U2PL reports the best epoch of its in-training val (center crop 513, padding
# scored as background, issue #145); here the whole image is scored (no crop, no padding).
#
# Data: VOC as reco_r101_voc_60labels.py (JPEGImages + the 12,031-map SegmentationClassAug).
# Split: the user's copy of U2PL's data/splits/pascal/1464/{labeled,unlabeled}.txt (not
# shipped; one id per line), by default under data/splits/u2pl/; another folder:
#   --cfg-options train_dataloader.dataset.datasets.0.split_file=DIR/labeled.txt \
#       train_dataloader.dataset.datasets.1.split_file=DIR/unlabeled.txt
#
# As U2PL: batch 4 labelled + 4 unlabelled per GPU on 4 GPUs; random rescale (U[0.5, 1] or
# U[1, 2], p = 1/2 each), flip, 513x513 random crop (image padded with the mean colour,
# centred) for both halves; 80 epochs of 570 iterations (45,600), the first epoch supervised
# only; SGD lr 1e-3 for the backbone and 1e-2 (x10) for the decoder, representation head
# (and aux head), weight decay 1e-4, poly 0.9 per iteration; CE; no aux head. Differences:
# _base_/u2pl_r101.py (label padding 255, the contrastive-loss bugs fixed, evaluation);
# U2PL samples each loader without replacement per epoch, here an endless sampler with a
# fixed 4 + 4 mix; val every epoch as U2PL (whole image instead of its center crop).
_base_ = ['./_base_/u2pl_r101.py']
data_root = 'data/VOCdevkit/VOC2012'
split = 'data/splits/u2pl/pascal/1464'
num_classes = 21
labelled_per_batch = 4
batch_size = 8  # per GPU: 4 labelled + 4 unlabelled
crop_size = (513, 513)
iters_per_epoch = 570  # (10,582 - 1,464) / (4 GPUs x 4 images)
epochs = 80
sup_only_epochs = 1
max_iters = epochs * iters_per_epoch
pipeline = [  # U2PL: the same weak transform for labelled and unlabelled images
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='U2PLRandomRescale', scale_range=(0.5, 2.0)),
    dict(type='RandomFlip', prob=0.5),
    # U2PL pads with 0 after normalisation = the mean colour (BGR here), labels 255 (U2PL: 0)
    dict(type='PadForCrop', crop_size=crop_size, img_pad_val=(103.53, 116.28, 123.675),
         seg_pad_val=255, position='center'),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_set = dict(type='PascalVOCSplitDataset', data_root=data_root, pipeline=pipeline,
                 data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'))
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='LabelledUnlabelledSampler', batch_size=batch_size,
                 labelled_fraction=labelled_per_batch / batch_size),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(train_set, split_file=split + '/labeled.txt'),
        dict(train_set, split_file=split + '/unlabeled.txt')]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(train_set, split_file=data_root + '/ImageSets/Segmentation/val.txt',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
model = dict(
    data_preprocessor=dict(size=crop_size),
    network=dict(num_classes=num_classes, aux=False),
    num_classes=num_classes,
    labelled_per_batch=labelled_per_batch,
    u2pl=dict(sup_only_iters=sup_only_epochs * iters_per_epoch, iters_per_epoch=iters_per_epoch,
              aux_weight=0.4),
    test_cfg=dict(mode='whole'))
# U2PL: encoder at lr, decoder (ASPP, low-level projection, classifier, representation, aux)
# at lr x 10 ("times" 10 on Pascal); the backbone's parameter names contain none of these keys
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={
        key: dict(lr_mult=10.0) for key in ('aspp', 'low_level_project', 'classifier',
                                           'representation', 'aux_head')}))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=iters_per_epoch)
default_hooks = dict(checkpoint=dict(interval=iters_per_epoch * 10, save_best='mIoU',
                                     rule='greater'))
