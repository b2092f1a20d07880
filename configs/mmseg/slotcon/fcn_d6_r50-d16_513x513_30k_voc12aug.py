# SlotCon / MoCo fine-tuning protocol on PASCAL VOC 2012 + SBD augmentation (10582 train
# images, 1449 val): FCN-D6 on a ResNet-50 at output stride 16 (_base_/fcn_d6_r50-d16.py),
# 513x513 crops, 30k iterations, SGD lr 0.003, steps at 21k / 27k, 2 GPUs x 8 images.
#
#   tools/dist_train.sh configs/mmseg/slotcon/fcn_d6_r50-d16_513x513_30k_voc12aug.py 2 \
#       --work-dir work_dirs/slotcon_voc \
#       --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/slotcon_r50_mmseg.pth
#   python tools/test.py configs/mmseg/slotcon/fcn_d6_r50-d16_513x513_30k_voc12aug.py \
#       work_dirs/slotcon_voc/iter_30000.pth
#
# Data: data/VOCdevkit/VOC2012 as MMSeg's dataset preparation guide builds it
# (https://mmsegmentation.readthedocs.io/en/latest/user_guides/2_dataset_prepare.html#pascal-voc:
# JPEGImages/, SegmentationClass/, SegmentationClassAug/ and ImageSets/Segmentation/aug.txt
# from mmseg's tools/dataset_converters/voc_aug.py). Another place:
#   --cfg-options train_dataloader.dataset.datasets.0.data_root=DIR \
#       train_dataloader.dataset.datasets.1.data_root=DIR val_dataloader.dataset.data_root=DIR
_base_ = ['../_base_/default_runtime.py', './_base_/fcn_d6_r50-d16.py']
crop_size = (513, 513)
num_classes = 21
data_preprocessor = dict(size=crop_size)
model = dict(data_preprocessor=data_preprocessor, decode_head=dict(num_classes=num_classes))

dataset_type = 'PascalVOCDataset'
data_root = 'data/VOCdevkit/VOC2012'
train_pipeline = [  # the protocol's (MoCo's mmseg 0.x pipeline): no photometric distortion
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='RandomResize', scale=(2049, 513), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),  # padded to crop_size by the data preprocessor
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(2049, 513), keep_ratio=True),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
dataset_train = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt',
    pipeline=train_pipeline)
dataset_aug = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClassAug'),
    ann_file='ImageSets/Segmentation/aug.txt',
    pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=8,  # per GPU; 2 GPUs
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[dataset_train, dataset_aug]))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

max_iters = 30000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.003, momentum=0.9, weight_decay=1e-4))
param_scheduler = [
    dict(type='MultiStepLR', milestones=[21000, 27000], gamma=0.1, begin=0,
         by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=3000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(checkpoint=dict(interval=3000))
