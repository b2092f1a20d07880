"""``SemiSupervisedSegmentor``: a student and its mean teacher in MMSeg 1.x (ReCo, U2PL).

One training batch from ``LabelledUnlabelledSampler`` holds ``labelled_per_batch`` labelled
images first, then the unlabelled ones. ``method`` picks the per-iteration order of
operations (spec semisup.md 1(b), 2(b)); the losses are registered modules (``losses.py``)
around the math in ``densessl.semisup``:

* ``supervised``: one student forward on the labelled images, cross-entropy. Unlabelled
  images in the batch are ignored (set ``labelled_fraction=1.0`` in the sampler for speed).
* ``mean_teacher`` (ReCo's baselines) and ``reco``:
    1. teacher (train-mode BN, no gradient) on the unlabelled images -> softmax at input size
       -> confidence c and pseudo-label y^ (argmax);
    2. ``mixing`` (cutout / cutmix / classmix) on (x_u, y^, c) together, then ReCo's strong
       augmentation (colour and blur on the image only, the flip on all three);
    3. two student forwards, labelled and strong unlabelled (BN sees them separately);
    4. L = CE(up(pred_l), y_l) + ``unsup_loss`` (``ConfidenceWeightedCELoss``)
           [+ ``contrast_loss`` (``ReCoLoss``) over [rep_l; rep_u] for ``reco``: valid pixels
           are the labelled ones and unlabelled ones with c >= weak_threshold, at the
           representation's resolution].
  ``partial_labels=True`` (ReCo's partial-label mode): the sparse labels of the unlabelled
  view overwrite its pseudo-labels (confidence 1 there), and the labelled half of the
  contrast takes the student's own predictions of confidence >= strong_threshold where it
  has no label.
* ``u2pl`` (spec 2(b)): before ``u2pl.sup_only_iters`` only L_sup (+ aux), the teacher's
  train-mode pass on the labelled images moving its BN statistics; from then on (the first
  semi-supervised iteration copies the student into the teacher):
    1. teacher (eval) on x_u -> c, y^; CutMix with the neighbour with probability 0.5;
    2. ONE student forward on [x_l; x_u] (BN sees both), L_sup (+ aux_weight * aux on x_l);
    3. teacher (train mode, no gradient) on [x_l; x_u] -> probabilities and features;
    4. L_u = ``EntropyDropCELoss`` (the drop ratio annealed over the epochs), L_c =
       ``U2PLContrastiveLoss`` against its per-class memory bank (a buffer of the loss
       module: saved in and restored from checkpoints; keys gathered across processes).
  ``MeanTeacherHook`` starts its schedule there (``first_semi_iteration``).

Prediction uses the teacher (``predict_with='teacher'``, as both originals evaluate) or the
student, whole-image or sliding-window (``test_cfg``), logits resized to the input.
``supervised`` always predicts with the student: its teacher never runs in train mode, so
its BN statistics stay at their initial values (and the original supervised script has no
teacher).
"""
import copy

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.dist import get_rank
from mmengine.logging import MessageHub, print_log
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.segmentors.encoder_decoder import EncoderDecoder
from mmseg.registry import MODELS

from densessl.semisup.mixing import U2PL_MIX_PROBABILITY, mix_batch, reco_strong_augment
from mmseg_plugins.semisup.losses import (ConfidenceWeightedCELoss, EntropyDropCELoss,
                                          ReCoLoss, U2PLContrastiveLoss)

METHODS = ('supervised', 'mean_teacher', 'reco', 'u2pl')
# the losses each method uses: (unsupervised, contrastive); a config entry of None takes these
DEFAULT_LOSSES = dict(
    supervised=(None, None),
    mean_teacher=(dict(type='ConfidenceWeightedCELoss'), None),
    reco=(dict(type='ConfidenceWeightedCELoss'), dict(type='ReCoLoss')),
    u2pl=(dict(type='EntropyDropCELoss'), dict(type='U2PLContrastiveLoss')))
LOSS_CLASSES = dict(mean_teacher=(ConfidenceWeightedCELoss, None),
                    reco=(ConfidenceWeightedCELoss, ReCoLoss),
                    u2pl=(EntropyDropCELoss, U2PLContrastiveLoss))
U2PL_DEFAULTS = dict(sup_only_iters=0, iters_per_epoch=None, aux_weight=0.4)


def iteration_seed(seed, rank, iteration):
    """The seed of one process's draws at one iteration: the same after a resume, different
    across processes (numpy's SeedSequence mixes the three numbers)."""
    return int(np.random.SeedSequence([seed, rank, iteration]).generate_state(1)[0])


@MODELS.register_module()
class SemiSupervisedSegmentor(BaseSegmentor):
    """Student ``network`` (a registered model returning ``dict(logits, rep[, aux_logits])``),
    its teacher (a copy), and the method's losses; see the module docstring.

    ``sup_loss``: None = cross-entropy ignoring ``ignore_index``, or a registered loss
    ``loss(logits, labels)`` (e.g. mmseg's ``OhemCrossEntropy`` for U2PL's Cityscapes).
    ``unsup_loss`` / ``contrast_loss``: the method's registered losses (``losses.py``); None
    takes the method's default (``DEFAULT_LOSSES``). ``partial_labels``: ReCo's partial-label
    mode (every image has sparse labels, the labelled and unlabelled sets are the same).
    ``u2pl``: ``sup_only_iters``, ``iters_per_epoch`` (the annealing's epoch), ``aux_weight``.
    ``test_cfg``: mmseg's ``dict(mode='whole')`` or ``dict(mode='slide', crop_size=(h, w),
    stride=(h, w))``. ``seed``: the draws of iteration t on process r come from
    ``iteration_seed(seed, r, t)``, so a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, network, num_classes, labelled_per_batch, method='reco',
                 mixing='classmix', sup_loss=None, unsup_loss=None, contrast_loss=None,
                 partial_labels=False, u2pl=None, predict_with='teacher',
                 test_cfg=dict(mode='whole'), ignore_index=255, seed=0,
                 data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if method not in METHODS:
            raise ValueError(f'SemiSupervisedSegmentor: method {method!r} is not one of {METHODS}')
        if predict_with not in ('teacher', 'student'):
            raise ValueError(f"predict_with must be 'teacher' or 'student', got {predict_with!r}")
        if partial_labels and method not in ('mean_teacher', 'reco'):
            raise ValueError(f'partial_labels is ReCo\'s mode (method mean_teacher or reco), not '
                             f'{method!r}')
        self.student = MODELS.build(network)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.pretrained = None  # init_weights copies the student's start
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self.num_classes = self.out_channels = num_classes  # out_channels: slide inference
        self.labelled_per_batch = labelled_per_batch
        self.method, self.mixing, self.partial_labels = method, mixing, partial_labels
        self.predict_with = 'student' if method == 'supervised' else predict_with
        self.ignore_index = ignore_index
        self.align_corners = False  # BaseSegmentor.postprocess_result resizes with it
        self.test_cfg = ConfigDict(test_cfg)
        if self.test_cfg.get('mode', 'whole') not in ('whole', 'slide'):
            raise ValueError(f"test_cfg.mode must be 'whole' or 'slide', got {self.test_cfg}")
        self.seed = seed
        self.generator = torch.Generator()  # reseeded every iteration (iteration_seed)
        unknown = set(u2pl or {}) - set(U2PL_DEFAULTS)
        if unknown:
            raise ValueError(f'SemiSupervisedSegmentor: unknown u2pl keys {sorted(unknown)}; '
                             f'known: {sorted(U2PL_DEFAULTS)} (the loss options belong to '
                             f'unsup_loss=dict(type=\'EntropyDropCELoss\', ...) and '
                             f'contrast_loss=dict(type=\'U2PLContrastiveLoss\', ...))')
        self.u2pl = {**U2PL_DEFAULTS, **(u2pl or {})}
        self.sup_loss = MODELS.build(sup_loss) if sup_loss is not None else None
        self.unsup_loss = self._build_loss(method, 0, unsup_loss)
        self.contrast_loss = self._build_loss(method, 1, contrast_loss)

    def _build_loss(self, method, which, cfg):
        default = DEFAULT_LOSSES[method][which]
        if default is None:  # e.g. a ReCo config run with --cfg-options model.method=supervised
            if cfg is not None:
                print_log(f'SemiSupervisedSegmentor: method {method!r} uses no '
                          f'{("unsup_loss", "contrast_loss")[which]}; {cfg.get("type")} not '
                          f'built', logger='current')
            return None
        cfg = dict(cfg or default)
        if cfg.get('type') == 'U2PLContrastiveLoss':
            cfg.setdefault('num_classes', self.num_classes)
            cfg.setdefault('dim', getattr(self.student.net, 'rep_dim', 256))
            cfg.setdefault('ignore_index', self.ignore_index)
        loss = MODELS.build(cfg)
        expected = LOSS_CLASSES[method][which]
        if not isinstance(loss, expected):
            raise TypeError(f'method {method!r} needs a {expected.__name__} as '
                            f'{("unsup_loss", "contrast_loss")[which]}, got {type(loss).__name__}')
        return loss

    @property
    def first_semi_iteration(self):
        """The first iteration with pseudo-labels (``MeanTeacherHook`` counts from it)."""
        return self.u2pl['sup_only_iters'] if self.method == 'u2pl' else 0

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

    def _iteration(self):
        return MessageHub.get_current_instance().get_info('iter') or 0

    def _draws(self, iteration, device):
        """This iteration's generator (mixing and loss sampling), on the data's device (the
        core functions draw where their generator lives)."""
        if self.generator.device != torch.device(device):
            self.generator = torch.Generator(device=device)
        return self.generator.manual_seed(iteration_seed(self.seed, get_rank(), iteration))

    def _supervised(self, logits, labels):
        logits = self._up(logits, labels.shape[-2:])
        if self.sup_loss is not None:
            return self.sup_loss(logits, labels)
        return F.cross_entropy(logits, labels, ignore_index=self.ignore_index)

    @torch.no_grad()
    def _pseudo_labels(self, images):
        """Teacher in train mode (its own BN statistics move), softmax at input size."""
        self.teacher.train()
        prob = self._up(self.teacher(images)['logits'], images.shape[-2:]).softmax(1)
        confidence, pseudo = prob.max(1)
        return pseudo, confidence

    # ------------------------------------------------------------------ training
    def loss(self, inputs, data_samples):
        iteration = self._iteration()
        generator = self._draws(iteration, inputs.device)
        if self.method == 'u2pl':
            return self._u2pl_loss(inputs, data_samples, iteration, generator)
        n_l = self.labelled_per_batch
        if inputs.shape[0] <= n_l and self.method != 'supervised':
            raise ValueError(f'batch of {inputs.shape[0]} images has no unlabelled image after '
                             f'labelled_per_batch={n_l}: check the sampler (labelled_fraction)')
        x_l, y_l = inputs[:n_l], self._labels(data_samples[:n_l])
        out_l = self.student(x_l)
        losses = dict(loss_sup=self._supervised(out_l['logits'], y_l))
        if self.method == 'supervised':
            return losses
        x_u = inputs[n_l:]
        pseudo, confidence = self._pseudo_labels(x_u)
        if self.partial_labels:  # ReCo: the sparse labels of the unlabelled view win, c = 1
            sparse = self._labels(data_samples[n_l:])
            given = sparse != self.ignore_index
            pseudo = torch.where(given, sparse, pseudo)
            confidence = torch.where(given, torch.ones_like(confidence), confidence)
        mixed = mix_batch(x_u, pseudo, confidence, self.mixing, generator,
                          num_classes=self.num_classes, ignore_index=self.ignore_index)
        x_u, pseudo, confidence = reco_strong_augment(mixed.images, mixed.labels,
                                                      mixed.confidence, generator)
        out_u = self.student(x_u)
        losses['loss_unsup'] = self.unsup_loss(self._up(out_u['logits'], pseudo.shape[-2:]),
                                               pseudo, confidence)
        if self.method == 'reco':
            losses['loss_reco'] = self._reco(out_l, out_u, y_l, pseudo, confidence, generator)
        return losses

    def _labelled_targets(self, out_l, y_l):
        """ReCo's labelled half for the contrast: ground truth and its valid mask; in the
        partial-label mode the student's own confident predictions fill the unlabelled
        pixels (confidence >= the loss's strong threshold)."""
        given = y_l != self.ignore_index
        if not self.partial_labels:
            return y_l, given
        confidence, predicted = self._up(out_l['logits'].detach(), y_l.shape[-2:]).softmax(1).max(1)
        labels = torch.where(given, y_l, predicted)
        return labels, given | (confidence >= self.contrast_loss.strong_threshold)

    def _reco(self, out_l, out_u, y_l, pseudo, confidence, generator):
        rep = torch.cat([out_l['rep'], out_u['rep']])
        size = rep.shape[-2:]
        with torch.no_grad():
            labels_l, valid_l = self._labelled_targets(out_l, y_l)
            labels = torch.cat([self._down(labels_l, size), self._down(pseudo, size)])
            conf_u = F.interpolate(confidence[:, None], size=size, mode='nearest')[:, 0]
            valid_l = self._down(valid_l.long(), size).bool()
            mask = torch.cat([valid_l & (labels[:y_l.shape[0]] != self.ignore_index),
                              (conf_u >= self.contrast_loss.weak_threshold)
                              & (labels[y_l.shape[0]:] != self.ignore_index)])
            logits = torch.cat([out_l['logits'], out_u['logits']])
            prob = F.interpolate(logits, size=size, mode='bilinear',
                                 align_corners=False).softmax(1)
        return self.contrast_loss(rep, labels, mask, prob, generator=generator)

    # ------------------------------------------------------------------ U2PL
    def _epoch(self, iteration):
        per_epoch = self.u2pl['iters_per_epoch'] or 1
        max_iters = MessageHub.get_current_instance().get_info('max_iters') or iteration + 1
        return iteration // per_epoch, max(1, max_iters // per_epoch)

    def _u2pl_loss(self, inputs, data_samples, iteration, generator):
        cfg, n_l = self.u2pl, self.labelled_per_batch
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
            mixed = mix_batch(x_u, pseudo, confidence, 'cutmix', generator,
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
        losses['loss_unsup'] = self.unsup_loss(self._up(out['logits'][n_l:], size), pseudo,
                                               teacher_logits_u, epoch, total)
        rep = out['rep']
        labels, low, high = self.contrast_loss.targets(y_l, pseudo, teacher_logits_u, epoch,
                                                       total, rep.shape[-2:])
        prob_teacher = F.interpolate(teacher_out['logits'], size=rep.shape[-2:],
                                     mode='bilinear', align_corners=False).softmax(1)
        # each process's L_c gives its own gradient and DDP averages them (U2PL all-reduces
        # L_c first, which scales its gradient by 1 / world size: bug_compat 'world_size')
        losses['loss_contrast'], _ = self.contrast_loss(
            rep, teacher_out['rep'], prob_teacher, labels, low, high, n_l, generator=generator)
        return losses

    def _sup_losses(self, out_l, y_l, aux_weight):
        losses = dict(loss_sup=self._supervised(out_l['logits'], y_l))
        if 'aux_logits' in out_l:
            losses['loss_aux'] = aux_weight * self._supervised(out_l['aux_logits'], y_l)
        return losses

    # ------------------------------------------------------------------ inference
    def _predictor(self):
        return self.teacher if self.predict_with == 'teacher' else self.student

    def encode_decode(self, inputs, batch_img_metas):
        network = self._predictor()
        return self._up(network(inputs)['logits'], inputs.shape[-2:])

    def extract_feat(self, inputs):
        return self._predictor()(inputs)

    def inference(self, inputs, batch_img_metas):
        """Whole-image or sliding-window logits at the input size (mmseg's test_cfg)."""
        if self.test_cfg.get('mode', 'whole') == 'slide':
            return EncoderDecoder.slide_inference(self, inputs, batch_img_metas)
        return self.encode_decode(inputs, batch_img_metas)

    def predict(self, inputs, data_samples=None):
        if data_samples is not None:
            metas = [s.metainfo for s in data_samples]
        else:
            metas = [dict(ori_shape=inputs.shape[2:], img_shape=inputs.shape[2:],
                          pad_shape=inputs.shape[2:], padding_size=[0, 0, 0, 0])] * len(inputs)
        return self.postprocess_result(self.inference(inputs, metas), data_samples)

    def _forward(self, inputs, data_samples=None):
        return self.encode_decode(inputs, None)
