# Supervised-only baseline of reco_r101_cityscapes_20labels.py: the same 20 labelled images,
# network, crops and augmentation, cross-entropy only, no teacher; ReCo's
#   python train_sup.py --dataset cityscapes --num_labels 20
# (ReCo's supervised script doubles the batch to 4 labelled images, as here.)
#
#   python tools/train.py configs/mmseg/semisup/reco_r101_cityscapes_20labels_supervised.py
#   bash tools/dist_train.sh configs/mmseg/semisup/reco_r101_cityscapes_20labels_supervised.py NGPUS
#
# Reported: 38.10 mIoU at 512x1024 (ReCo's README, supervised row).
# Data and split: reco_r101_cityscapes_20labels.py (the unlabelled set is built, never
# sampled: labelled_fraction=1.0). Predictions come from the student.
_base_ = ['./reco_r101_cityscapes_20labels.py']
batch_size = 4
train_dataloader = dict(
    batch_size=batch_size,
    sampler=dict(type='LabelledUnlabelledSampler', batch_size=batch_size,
                 labelled_fraction=1.0))
model = dict(method='supervised', labelled_per_batch=batch_size, unsup_loss=None,
             contrast_loss=None)
custom_hooks = [dict(type='RunManifestHook'), dict(type='ResultsTableHook')]
