# ReCo (mean teacher + ClassMix + regional contrast) on the built-in synthetic scenes with 5%
# of the training images labelled (10 of 200; split shipped in splits/synthetic_scenes_5pct,
# written by tools/make_splits.py --labelled-fraction 0.05 --seed 0), ResNet-18 DeepLabV3+,
# sized for a CPU. method='mean_teacher' / 'supervised' give the baselines; a pretrained
# ResNet-18 (e.g. the demo's SlotCon, converted with --dst-format mmseg) is one override:
#   python tools/train.py configs/mmseg/semisup/reco_r18_synthetic_5pct.py \
#       --cfg-options model.network.init_cfg.checkpoint=work_dirs/demo/slotcon_resnet18_mmseg.pth
_base_ = ['../_base_/default_runtime.py']
data_root = 'data/synthetic_scenes'
split = 'configs/mmseg/semisup/splits/synthetic_scenes_5pct'
num_classes = 8
batch_size = 8  # 4 labelled + 4 unlabelled per iteration
crop_size = (64, 128)  # random half-size crops: ~4x cheaper steps on a CPU
pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='LoadAnnotationsChecked', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
subset = dict(type='SyntheticScenesDataset', data_root=data_root, pipeline=pipeline,
              data_prefix=dict(img_path='leftImg8bit/train', seg_map_path='gtFine/train'))
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='LabelledUnlabelledSampler', batch_size=batch_size, labelled_fraction=0.5),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(subset, split_file=split + '/labeled.txt'),
        dict(subset, split_file=split + '/unlabeled.txt')]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SyntheticScenesDataset', data_root=data_root, pipeline=test_pipeline,
                 data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val')))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
model = dict(
    type='SemiSupervisedSegmentor',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255, size_divisor=32),
    network=dict(type='ReCoNetwork', num_classes=num_classes, depth=18, output_stride=16,
                 norm_cfg=dict(type='SyncBN', requires_grad=True),
                 init_cfg=dict(type='Pretrained', checkpoint=None)),  # None: random start
    num_classes=num_classes,
    labelled_per_batch=batch_size // 2,
    method='reco',
    mixing='classmix',
    unsup_loss=dict(type='ConfidenceWeightedCELoss', strong_threshold=0.97),
    contrast_loss=dict(type='ReCoLoss', num_queries=64, num_negatives=128,  # ReCo: 256 / 512
                       temperature=0.5, strong_threshold=0.97, weak_threshold=0.7),
    predict_with='teacher')
max_iters = 300
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters,
                 val_begin=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=100))
custom_hooks = [dict(type='RunManifestHook'), dict(type='ResultsTableHook'),
                dict(type='MeanTeacherHook', max_momentum=0.99)]
