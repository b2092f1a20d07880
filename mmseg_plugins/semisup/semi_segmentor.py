"""``SemiSupervisedSegmentor``: a student and its mean teacher in MMSeg 1.x (ReCo family).

One training batch from ``LabelledUnlabelledSampler`` holds ``labelled_per_batch`` labelled
images first, then the unlabelled ones. ``method`` picks the per-iteration order of
operations (spec semisup.md 1(b); the math is ``densessl.semisup``):

* ``supervised``: one student forward on the labelled images, cross-entropy. Unlabelled
  images in the batch are ignored (set ``labelled_fraction=1.0`` in the sampler for speed).
* ``mean_teacher`` (ReCo's baselines) and ``reco``:
    1. teacher (train-mode BN, no gradient) on the unlabelled images -> softmax at input size
       -> confidence c and pseudo-label y^ (argmax);
    2. ``mixing`` (cutout / cutmix / classmix) on (x_u, y^, c) together, then ReCo's strong
       augmentation (colour and blur on the image only, the flip on all three);
    3. two student forwards, labelled and strong unlabelled (BN sees them separately);
    4. L = CE(up(pred_l), y_l) + confidence-weighted CE(up(pred_u), y^, c, 0.97)
           [+ ReCo's regional contrast over [rep_l; rep_u] for ``reco``: valid pixels are the
           labelled ones and unlabelled ones with c >= weak_threshold, at the representation's
           resolution].
  The teacher follows the student through ``MeanTeacherHook`` (parameters only).
* ``u2pl`` (spec 2(b)): before ``u2pl.sup_only_iters`` only L_sup (+ aux), the teacher's
  train-mode pass on the labelled images moving its BN statistics; from then on (the first
  semi-supervised iteration copies the student into the teacher):
    1. teacher (eval) on x_u -> c, y^; CutMix with the neighbour with probability 0.5;
    2. ONE student forward on [x_l; x_u] (BN sees both), L_sup (+ 0.4 aux on x_l);
    3. teacher (train mode, no gradient) on [x_l; x_u] -> probabilities and features;
    4. L_u = entropy-drop CE (the drop ratio annealed over the epochs), L_c = U2PL's
       contrastive loss against the per-class memory bank (``ClassMemoryBank``, a buffer of
       this model: saved in and restored from checkpoints; keys gathered across processes).
  Set ``MeanTeacherHook(first_semi_iteration=u2pl.sup_only_iters)``.

Prediction uses the teacher (``predict_with='teacher'``, as both originals evaluate) or the
student; whole-image inference, logits resized to the input. ``supervised`` always predicts
with the student: its teacher never runs in train mode, so its BN statistics stay at their
initial values (and the original supervised script has no teacher).
"""
import copy

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_world_size
from mmengine.logging import MessageHub
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS

from densessl.semisup.memory_bank import ClassMemoryBank, u2pl_queue_sizes
from densessl.semisup.mixing import U2PL_MIX_PROBABILITY, mix_batch, reco_strong_augment
from densessl.semisup.reco_loss import confidence_weighted_ce, reco_loss
from densessl.semisup.u2pl_loss import (contrastive_targets, entropy_drop_ce,
                                        low_entropy_percent, u2pl_contrastive_loss,
                                        unreliable_percent)

METHODS = ('supervised', 'mean_teacher', 'reco', 'u2pl')
U2PL_DEFAULTS = dict(sup_only_iters=0, iters_per_epoch=None, drop_percent=80.0,
                     low_entropy_threshold=20.0, num_queries=256, num_negatives=50,
                     temperature=0.5, low_rank=3, high_rank=20, current_class_threshold=0.3,
                     current_class_negative_threshold=1.0, queue_size=30000,
                     queue_size_class0=50000, aux_weight=0.4, unsup_weight=1.0,
                     contrast_weight=1.0, bug_compat=False)


def gather_rows(rows):
    """All processes' (n_i, k) rows in rank order (mmengine's all_gather needs equal shapes:
    rows are padded with class id -1 in the last column, which the bank skips)."""
    if get_world_size() == 1:
        return rows
    counts = all_gather(torch.tensor([rows.shape[0]], device=rows.device))
    most = int(max(int(c) for c in counts))
    padded = rows.new_full((most, rows.shape[1]), -1.0)
    padded[:rows.shape[0]] = rows
    return torch.cat(all_gather(padded))


@MODELS.register_module()
class SemiSupervisedSegmentor(BaseSegmentor):
    """Student ``network`` (a registered model returning ``dict(logits, rep)``), its
    teacher (a copy), and the method's losses; see the module docstring."""

    def __init__(self, network, num_classes, labelled_per_batch, method='reco',
                 mixing='classmix', strong_threshold=0.97, weak_threshold=0.7,
                 reco=dict(temperature=0.5, num_queries=256, num_negatives=512),
                 unsup_weight=1.0, reco_weight=1.0, u2pl=None, predict_with='teacher',
                 ignore_index=255, seed=0, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if method not in METHODS:
            raise ValueError(f'SemiSupervisedSegmentor: method {method!r} is not one of {METHODS}')
        if predict_with not in ('teacher', 'student'):
            raise ValueError(f"predict_with must be 'teacher' or 'student', got {predict_with!r}")
        self.student = MODELS.build(network)
        self.teacher = copy.deepcopy(self.student)
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.num_classes = num_classes
        self.labelled_per_batch = labelled_per_batch
        self.method, self.mixing = method, mixing
        self.strong_threshold, self.weak_threshold = strong_threshold, weak_threshold
        self.reco_options = dict(reco)
        self.unsup_weight, self.reco_weight = unsup_weight, reco_weight
        self.predict_with = 'student' if method == 'supervised' else predict_with
        self.ignore_index = ignore_index
        self.align_corners = False  # BaseSegmentor.postprocess_result resizes with it
        self.generator = torch.Generator().manual_seed(seed)  # mixing + loss sampling draws
        unknown = set(u2pl or {}) - set(U2PL_DEFAULTS)
        if unknown:
            raise ValueError(f'SemiSupervisedSegmentor: unknown u2pl keys {sorted(unknown)}; '
                             f'known: {sorted(U2PL_DEFAULTS)}')
        self.u2pl = {**U2PL_DEFAULTS, **(u2pl or {})}
        if method == 'u2pl':
            self.memory_bank = ClassMemoryBank(
                num_classes, dim=getattr(self.student.net, 'rep_dim', 256),
                capacity=u2pl_queue_sizes(num_classes, self.u2pl['queue_size'],
                                          self.u2pl['queue_size_class0']),
                gather_fn=gather_rows)

    def init_weights(self):
        super().init_weights()
        self.teacher.load_state_dict(self.student.state_dict())  # start equal (also BN)

    # ------------------------------------------------------------------ helpers
    def _labels(self, data_samples):
        return torch.stack([s.gt_sem_seg.data[0] for s in data_samples]).long()

    def _up(self, logits, size):
        return F.interpolate(logits, size=size, mode='bilinear', align_corners=False)

    def _down(self, labels, size):
        return F.interpolate(labels[:, None].float(), size=size, mode='nearest')[:, 0].long()

    @torch.no_grad()
    def _pseudo_labels(self, images):
        """Teacher in train mode (its own BN statistics move), softmax at input size."""
        self.teacher.train()
        prob = self._up(self.teacher(images)['logits'], images.shape[-2:]).softmax(1)
        confidence, pseudo = prob.max(1)
        return pseudo, confidence

    # ------------------------------------------------------------------ training
    def loss(self, inputs, data_samples):
        if self.method == 'u2pl':
            return self._u2pl_loss(inputs, data_samples)
        n_l = self.labelled_per_batch
        if inputs.shape[0] <= n_l and self.method != 'supervised':
            raise ValueError(f'batch of {inputs.shape[0]} images has no unlabelled image after '
                             f'labelled_per_batch={n_l}: check the sampler (labelled_fraction)')
        x_l, y_l = inputs[:n_l], self._labels(data_samples[:n_l])
        out_l = self.student(x_l)
        losses = dict(loss_sup=F.cross_entropy(self._up(out_l['logits'], y_l.shape[-2:]), y_l,
                                               ignore_index=self.ignore_index))
        if self.method == 'supervised':
            return losses
        x_u = inputs[n_l:]
        pseudo, confidence = self._pseudo_labels(x_u)
        mixed = mix_batch(x_u, pseudo, confidence, self.mixing, self.generator,
                          num_classes=self.num_classes, ignore_index=self.ignore_index)
        x_u, pseudo, confidence = reco_strong_augment(mixed.images, mixed.labels,
                                                      mixed.confidence, self.generator)
        out_u = self.student(x_u)
        losses['loss_unsup'] = self.unsup_weight * confidence_weighted_ce(
            self._up(out_u['logits'], pseudo.shape[-2:]), pseudo, confidence,
            self.strong_threshold, self.ignore_index)
        if self.method == 'reco':
            losses['loss_reco'] = self.reco_weight * self._reco(out_l, out_u, y_l, pseudo,
                                                                confidence)
        return losses

    def _reco(self, out_l, out_u, y_l, pseudo, confidence):
        rep = torch.cat([out_l['rep'], out_u['rep']])
        size = rep.shape[-2:]
        with torch.no_grad():
            labels = torch.cat([self._down(y_l, size), self._down(pseudo, size)])
            conf_u = F.interpolate(confidence[:, None], size=size, mode='nearest')[:, 0]
            mask = torch.cat([labels[:y_l.shape[0]] != self.ignore_index,
                              (conf_u >= self.weak_threshold)
                              & (labels[y_l.shape[0]:] != self.ignore_index)])
            logits = torch.cat([out_l['logits'], out_u['logits']])
            prob = F.interpolate(logits, size=size, mode='bilinear',
                                 align_corners=False).softmax(1)
        return reco_loss(rep, labels, mask, prob, strong_threshold=self.strong_threshold,
                         generator=self.generator, **self.reco_options)

    # ------------------------------------------------------------------ U2PL
    def _epoch(self, iteration):
        per_epoch = self.u2pl['iters_per_epoch'] or 1
        max_iters = MessageHub.get_current_instance().get_info('max_iters') or iteration + 1
        return iteration // per_epoch, max(1, max_iters // per_epoch)

    def _u2pl_loss(self, inputs, data_samples):
        cfg, n_l = self.u2pl, self.labelled_per_batch
        iteration = MessageHub.get_current_instance().get_info('iter') or 0
        x_l, y_l = inputs[:n_l], self._labels(data_samples[:n_l])
        size = y_l.shape[-2:]
        if iteration < cfg['sup_only_iters']:
            out = self.student(x_l)
            losses = self._sup_losses(out, y_l, cfg['aux_weight'])
            with torch.no_grad():
                self.teacher.train()
                self.teacher(x_l)  # BN statistics only
            losses['loss_unsup'] = out['rep'].sum() * 0.0
            losses['loss_contrast'] = out['rep'].sum() * 0.0
            return losses
        if iteration == cfg['sup_only_iters']:  # first semi-supervised step: teacher = student
            self.teacher.load_state_dict(self.student.state_dict())
        x_u = inputs[n_l:]
        with torch.no_grad():
            self.teacher.eval()
            prob_u = self._up(self.teacher(x_u)['logits'], x_u.shape[-2:]).softmax(1)
            confidence, pseudo = prob_u.max(1)
            mixed = mix_batch(x_u, pseudo, confidence, 'cutmix', self.generator,
                              probability=U2PL_MIX_PROBABILITY, ignore_index=self.ignore_index)
            x_u, pseudo = mixed.images, mixed.labels
        out = self.student(torch.cat([x_l, x_u]))  # one forward: BN sees both
        out_l = {k: v[:n_l] for k, v in out.items()}
        losses = self._sup_losses(out_l, y_l, cfg['aux_weight'])
        with torch.no_grad():
            self.teacher.train()
            teacher_out = self.teacher(torch.cat([x_l, x_u]))
        teacher_logits_u = self._up(teacher_out['logits'][n_l:], size)
        epoch, total = self._epoch(iteration)
        losses['loss_unsup'] = cfg['unsup_weight'] * entropy_drop_ce(
            self._up(out['logits'][n_l:], size), pseudo, teacher_logits_u,
            unreliable_percent(epoch, total, cfg['drop_percent']), self.ignore_index)
        rep = out['rep']
        labels, low, high = contrastive_targets(
            y_l, pseudo, teacher_logits_u,
            low_entropy_percent(epoch, total, cfg['low_entropy_threshold']), rep.shape[-2:],
            self.ignore_index)
        prob_teacher = F.interpolate(teacher_out['logits'], size=rep.shape[-2:],
                                     mode='bilinear', align_corners=False).softmax(1)
        contrast, terms = u2pl_contrastive_loss(
            rep, teacher_out['rep'], prob_teacher, labels, low, high, n_l, self.memory_bank,
            num_queries=cfg['num_queries'], num_negatives=cfg['num_negatives'],
            temperature=cfg['temperature'], low_rank=cfg['low_rank'], high_rank=cfg['high_rank'],
            current_class_threshold=cfg['current_class_threshold'],
            current_class_negative_threshold=cfg['current_class_negative_threshold'],
            ignore_index=self.ignore_index, bug_compat=cfg['bug_compat'],
            generator=self.generator)
        # U2PL all-reduces L_c and divides by the world size; here each process's L_c gives
        # its own gradient and DDP averages the gradients (the logged value is this rank's)
        losses['loss_contrast'] = cfg['contrast_weight'] * contrast
        return losses

    def _sup_losses(self, out_l, y_l, aux_weight):
        losses = dict(loss_sup=F.cross_entropy(self._up(out_l['logits'], y_l.shape[-2:]), y_l,
                                               ignore_index=self.ignore_index))
        if 'aux_logits' in out_l:
            losses['loss_aux'] = aux_weight * F.cross_entropy(
                self._up(out_l['aux_logits'], y_l.shape[-2:]), y_l,
                ignore_index=self.ignore_index)
        return losses

    # ------------------------------------------------------------------ inference
    def _predictor(self):
        return self.teacher if self.predict_with == 'teacher' else self.student

    def encode_decode(self, inputs, batch_img_metas):
        network = self._predictor()
        return self._up(network(inputs)['logits'], inputs.shape[-2:])

    def extract_feat(self, inputs):
        return self._predictor()(inputs)

    def predict(self, inputs, data_samples=None):
        if data_samples is not None:
            metas = [s.metainfo for s in data_samples]
        else:
            metas = [dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
                          pad_shape=inputs.shape[2:], padding_size=[0, 0, 0, 0])] * len(inputs)
        return self.postprocess_result(self.encode_decode(inputs, metas), data_samples)

    def _forward(self, inputs, data_samples=None):
        return self.encode_decode(inputs, None)
