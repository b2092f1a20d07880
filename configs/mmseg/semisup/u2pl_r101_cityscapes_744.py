# U2PL (CutMix), Cityscapes 744 (1/4 of the 2,975 fine train images labelled, U2PL's split),
# the other 2,231 unlabelled; U2PL's experiments/cityscapes/744/ours run
#   sh train.sh 8 PORT, then its eval.sh (sliding window on the full-resolution val images)
#
#   bash tools/dist_train.sh configs/mmseg/semisup/u2pl_r101_cityscapes_744.py 8
#   python tools/train.py configs/mmseg/semisup/u2pl_r101_cityscapes_744.py   (1 GPU: an
#       eighth of U2PL's batch; U2PL's README: scale the lr linearly with fewer GPUs)
# Other sizes (186 / 372 / 1488): point both split files at that folder and set the epoch
# length (2,975 - n) / 16 iterations in model.u2pl.iters_per_epoch, train_cfg.max_iters
# (200 epochs), param_scheduler.0.end.
#
# Reported (U2PL's README, R101, mIoU on the 500 val images, sliding window at 1024x2048):
# 76.47 (U2PL w/ CutMix; SupOnly 74.43). The often quoted 78.51 is the "w/ AEL" row (branch
# with_AEL), not this config. An independent run of U2PL's code got 75.79 (issue #13).
#
# Data: Cityscapes in mmseg's layout (as reco_r101_cityscapes_20labels.py). Split: the user's
# copy of U2PL's data/splits/cityscapes/744/{labeled,unlabeled}.txt (not shipped; its lines,
# leftImg8bit/train/<city>/<id>_leftImg8bit.png, are read as ids), by default under
# data/splits/u2pl/; another folder: --cfg-options
#   train_dataloader.dataset.datasets.0.split_file=DIR/labeled.txt
#   train_dataloader.dataset.datasets.1.split_file=DIR/unlabeled.txt
#
# As U2PL: batch 2 labelled + 2 unlabelled per GPU on 8 GPUs; random rescale (U[0.5, 1] or
# U[1, 2]), flip, 769x769 random crop for both halves; 200 epochs of 139 iterations (27,800),
# no supervised-only epoch; SGD lr 1e-2 for all parameters (decoder x1), weight decay 5e-4,
# poly 0.9; supervised loss OHEM CE (threshold 0.7, at least 100,000 pixels) on the main head
# and 0.4 x the aux head (layer3); test: sliding 769x769 windows, stride 513, on the full
# 1024x2048 images (U2PL's eval.sh). Differences: _base_/u2pl_r101.py (label padding 255,
# the contrastive-loss bugs fixed); the OHEM is mmseg's OhemCrossEntropy; the teacher is
# evaluated with the sliding window every 20 epochs (U2PL: center-crop val every epoch, ~4
# points lower than eval.sh, issue #26): --cfg-options train_cfg.val_interval=139 for more.
_base_ = ['./_base_/u2pl_r101.py']
data_root = 'data/cityscapes'
split = 'data/splits/u2pl/cityscapes/744'
num_classes = 19
labelled_per_batch = 2
batch_size = 4  # per GPU: 2 labelled + 2 unlabelled
crop_size = (769, 769)
iters_per_epoch = 139  # (2,975 - 744) / (8 GPUs x 2 images)
epochs = 200
max_iters = epochs * iters_per_epoch
pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='U2PLRandomRescale', scale_range=(0.5, 2.0)),
    dict(type='RandomFlip', prob=0.5),
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
train_set = dict(type='CityscapesSplitDataset', data_root=data_root, pipeline=pipeline,
                 data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'))
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
    dataset=dict(type='CityscapesSplitDataset', data_root=data_root, pipeline=test_pipeline,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
test_dataloader = val_dataloader
model = dict(
    data_preprocessor=dict(size=crop_size),
    network=dict(num_classes=num_classes, aux=True),
    num_classes=num_classes,
    labelled_per_batch=labelled_per_batch,
    sup_loss=dict(_delete_=True, type='OhemCrossEntropy', thres=0.7, min_kept=100000),
    u2pl=dict(sup_only_iters=0, iters_per_epoch=iters_per_epoch, aux_weight=0.4),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(513, 513)))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-2, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=iters_per_epoch * 20)
default_hooks = dict(checkpoint=dict(interval=iters_per_epoch * 20, save_best='mIoU',
                                     rule='greater'))
