# Supervised-only baseline of u2pl_r101_voc_classic_1464.py: the same 1,464 labelled images,
# network, crops, schedule and optimizer, cross-entropy on the labelled images only, no
# teacher (U2PL's "SupOnly" row, experiments/pascal/1464/suponly with train_sup.py).
#
#   bash tools/dist_train.sh configs/mmseg/semisup/u2pl_r101_voc_classic_1464_supervised.py 4
#   python tools/train.py configs/mmseg/semisup/u2pl_r101_voc_classic_1464_supervised.py
#
# Reported: 72.50 mIoU (U2PL's README, SupOnly, classic 1464).
# Data and split: u2pl_r101_voc_classic_1464.py (the unlabelled set is built, never sampled:
# labelled_fraction=1.0). Batch 4 labelled images per GPU; the 45,600-iteration schedule of
# the semi-supervised config (U2PL's SupOnly config, which this does not copy, has its own
# epoch length and GPU count). Predictions come from the student.
_base_ = ['./u2pl_r101_voc_classic_1464.py']
batch_size = 4
train_dataloader = dict(
    batch_size=batch_size,
    sampler=dict(type='LabelledUnlabelledSampler', batch_size=batch_size,
                 labelled_fraction=1.0))
model = dict(method='supervised', labelled_per_batch=batch_size, unsup_loss=None,
             contrast_loss=None, u2pl=dict(sup_only_iters=0))
custom_hooks = [dict(type='RunManifestHook'), dict(type='ResultsTableHook')]
