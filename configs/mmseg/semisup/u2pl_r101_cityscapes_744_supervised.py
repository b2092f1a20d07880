# Supervised-only baseline of u2pl_r101_cityscapes_744.py: the same 744 labelled images,
# network (with the aux head), crops, OHEM loss, schedule and optimizer, no teacher (U2PL's
# "SupOnly" row, experiments/cityscapes/744/suponly with train_sup.py).
#
#   bash tools/dist_train.sh configs/mmseg/semisup/u2pl_r101_cityscapes_744_supervised.py 8
#   python tools/train.py configs/mmseg/semisup/u2pl_r101_cityscapes_744_supervised.py
#
# Reported: 74.43 mIoU (U2PL's README, SupOnly, Cityscapes 744, sliding window).
# Data and split: u2pl_r101_cityscapes_744.py (the unlabelled set is built, never sampled:
# labelled_fraction=1.0). Batch 2 labelled images per GPU; the 27,800-iteration schedule of
# the semi-supervised config (U2PL's SupOnly config, which this does not copy, has its own
# epoch length and GPU count). Predictions come from the student.
_base_ = ['./u2pl_r101_cityscapes_744.py']
batch_size = 2
train_dataloader = dict(
    batch_size=batch_size,
    sampler=dict(type='LabelledUnlabelledSampler', batch_size=batch_size,
                 labelled_fraction=1.0))
model = dict(method='supervised', labelled_per_batch=batch_size, unsup_loss=None,
             contrast_loss=None)
custom_hooks = [dict(type='RunManifestHook'), dict(type='ResultsTableHook')]
