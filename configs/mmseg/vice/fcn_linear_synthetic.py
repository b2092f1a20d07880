# ViCE's linear probe on densessl's synthetic street scenes (the CPU demo): the protocol of
# fcn_linear_coco-stuff164k.py with the data set and short schedule of
# configs/mmseg/linear_probe/fcn_linear_r18_synthetic.py (8 classes, 80 iterations).
#
#   python tools/train.py configs/mmseg/vice/fcn_linear_synthetic.py --cfg-options \
#       model.backbone.vissl_config=<the run's VISSL yaml> \
#       model.backbone.checkpoint=<run dir>/model_final_checkpoint_phaseN.torch
#
# Options a user sets with --cfg-options:
#   model.backbone.vissl_config  VISSL YAML of the pretraining run (config.MODEL.TRUNK is read);
#                                it replaces model.backbone.trunk
#   model.backbone.checkpoint    VISSL checkpoint of the deeplabv3plus trunk; None (default) =
#                                the random-init baseline (deterministic: seed 0)
#   model.backbone.trunk         the trunk without a YAML (default: ResNet-18, output stride 8)
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/synthetic_scenes.py',
    '_base_/vice_linear_probe.py',
]
norm_cfg = dict(type='BN', requires_grad=True)  # BN, not SyncBN: runs on CPU as it is
model = dict(
    backbone=dict(trunk=dict(depth=18, output_stride=8)),
    decode_head=dict(channels=256, num_classes=8, norm_cfg=norm_cfg,
                     loss_decode=dict(avg_non_ignore=True)))

# the schedule of the ResNet linear probe on these scenes (80 iterations, SGD 0.01 poly), with 4
# images per batch instead of 8: the frozen DeepLabV3+ runs at full resolution (output stride 8)
# in every iteration, and the demo has to fit in its time budget. Compare ViCE with the random
# init of the same trunk (same config), not across backbones.
train_dataloader = dict(batch_size=4)
max_iters = 80
optim_wrapper = dict(
    type='OptimWrapper',
    # ViCE's lr 0.01 is for 12k iterations; 80 need 0.1 (see fcn_linear_r18_synthetic.py)
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, by_epoch=False)
]
# val_begin: mmengine's default, written out so that a run can skip validation in training
# (tools/demo.py sets it past max_iters and tests with tools/test.py right after)
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters,
                 val_begin=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters))
