# ViCE's linear probe on Cityscapes (19 classes, full 2048x1024, no crop), spec 1(a) G; the
# paper reports aAcc 85.51 / mIoU 28.83 / mAcc 34.72 for exp31 (road-scene pretraining).
# ViCE's own config gives this head 27 logits, 8 of them never used; here it has 19.
#
#   tools/dist_train.sh configs/mmseg/vice/fcn_linear_cityscapes.py 8 --cfg-options \
#       model.backbone.vissl_config=<the run's VISSL yaml> \
#       model.backbone.checkpoint=<run dir>/model_final_checkpoint_phase1.torch
#
# model.backbone.vissl_config / model.backbone.checkpoint: as in fcn_linear_coco-stuff164k.py.
# Data: mmseg's Cityscapes layout under data/cityscapes (leftImg8bit, gtFine labelTrainIds).
_base_ = [
    '../_base_/default_runtime.py',
    '_base_/vice_linear_probe.py',
    '_base_/schedule_12k.py',
]
num_classes = 19
model = dict(decode_head=dict(channels=250, num_classes=num_classes))

dataset_type = 'CityscapesDataset'
data_root = 'data/cityscapes'
train_pipeline = [  # full resolution, no resize or crop
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='Resize', scale=(2048, 1024), keep_ratio=True),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,  # x 8 GPUs = 32, as in ViCE
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(interval=3000))
