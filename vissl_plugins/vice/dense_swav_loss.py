"""Loss ``dense_swav_loss``: ViCE's dense SwAV on superpixel regions (Karlsson et al. 2021).

Spec: shared/specs/pretrain.md 1(a) D and section 6. Inputs, for V views of N images in
view-major order (row b = v * N + n):

    output  [embeddings (V*N, D, S, S) L2-normalised, scores (V*N, K, S, S)]  (dense_swav_head)
    target  {'superpixels': (V*N, S, S) long, -1 = not learnable, one id = one region in every
             view of an image; 'num_views': V (optional, else config ``num_crops``)}  (dense_collator)

With representatives z*, s* and coherence of every region (``region_pooling``):

    L_coh  = mean_{v,n} mean_{r in (v,n)} mean_{p in r} || z_p - z*_r + 1e-6 ||
    Q      = SinkhornKnopp([s*_{0,r} for all regions r of view 0 ; C . queue]) / eps  (batch rows)
    L_swav = mean_{v=1..V-1} mean_{r in view v} - sum_k Q_{r0,k} log softmax(s*_{v,r} / tau)_k
             where r0 is the region with the same id in view 0 of the same image
             (pooled over all images of view v; no swapped prediction back onto view 0)
    L      = (coherence_weight * L_coh + swav_weight * L_swav) / 2

The queue holds the z* of view-0 regions of earlier batches (FIFO, ``queue_length //
world_size`` rows per process, random-uniform at start, used and filled from iteration
``queue.start_iter`` on); its scores C . queue are refreshed before every loss by
``DenseSwAVQueueScoresHook`` with the current prototypes C.

Differences from the original (fixes, no flag needed: none changes a correct run's value):
regions are matched across views by id, so a view that lost a region contributes the regions
it has (the original matched by sorted position and crashed on a count mismatch); the queue
scores are fresh at the queue's first iteration (the original used the random initial scores
for that one step); a non-finite loss raises an error naming its terms (the original's NaN
branch crashed on an undefined variable).
"""
import logging
import math

import torch
import torch.nn.functional as F
from classy_vision.generic.distributed_util import get_world_size
from classy_vision.losses import ClassyLoss, register_loss

from densessl.vice.region_pooling import mean_coherence, pool_regions
from densessl.vice.sinkhorn import sinkhorn_knopp

DEFAULTS = {
    'temperature': 0.1, 'epsilon': 0.05, 'num_iters': 3, 'crops_for_assign': [0],
    'num_crops': 5, 'num_prototypes': 128, 'embedding_dim': 128,
    'coherence_weight': 1.0, 'swav_weight': 1.0, 'use_double_precision': False,
    'queue': {'queue_length': 0, 'start_iter': 0},
}


class DenseSwAVConfigError(ValueError):
    """A LOSS.dense_swav_loss key that is unknown or has an unusable value."""


def _checked_config(loss_config):
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for key, value in dict(loss_config or {}).items():
        if key == 'name':  # VISSL's build_loss adds the loss name
            continue
        if key not in DEFAULTS:
            raise DenseSwAVConfigError(
                f'unknown key config.LOSS.dense_swav_loss.{key}; known keys: '
                f'{", ".join(DEFAULTS)} (see vissl_plugins/vice/dense_swav_loss.py)')
        if key == 'queue':
            for qkey in dict(value):
                if qkey not in DEFAULTS['queue'] and qkey != 'local_queue_length':
                    raise DenseSwAVConfigError(
                        f'unknown key config.LOSS.dense_swav_loss.queue.{qkey}; known keys: '
                        f'queue_length, start_iter')
            config['queue'].update(dict(value))
        else:
            config[key] = value
    if list(config['crops_for_assign']) != [0]:
        raise DenseSwAVConfigError(
            f'config.LOSS.dense_swav_loss.crops_for_assign={list(config["crops_for_assign"])}: '
            f'ViCE takes the targets from the centre view only; use [0]')
    return config


@register_loss('dense_swav_loss')
class DenseSwAVLoss(ClassyLoss):
    """See the module docstring. Buffers (checkpointed with the loss): ``num_iteration``,
    ``queue_embeddings`` (L, D), ``queue_scores`` (L, K)."""

    def __init__(self, temperature, epsilon, num_iters, num_crops, num_prototypes,
                 embedding_dim, local_queue_length=0, queue_start_iter=0,
                 coherence_weight=1.0, swav_weight=1.0, use_double_precision=False):
        super().__init__()
        self.temperature, self.epsilon, self.num_iters = temperature, epsilon, num_iters
        self.num_crops, self.num_prototypes = num_crops, num_prototypes
        self.embedding_dim = embedding_dim
        self.coherence_weight, self.swav_weight = coherence_weight, swav_weight
        self.use_double_precision = use_double_precision
        self.local_queue_length, self.queue_start_iter = local_queue_length, queue_start_iter
        self.register_buffer('num_iteration', torch.zeros((), dtype=torch.long))
        # ViCE's init: embeddings U(-a, a) with a = 1/sqrt(D/3), scores U(-1, 1)
        bound = 1.0 / math.sqrt(embedding_dim / 3)
        self.register_buffer('queue_embeddings',
                             (torch.rand(local_queue_length, embedding_dim) * 2 - 1) * bound)
        self.register_buffer('queue_scores', torch.rand(local_queue_length, num_prototypes) * 2 - 1)
        self._queue_scores_iteration = -1
        self.last_terms = {}

    @classmethod
    def from_config(cls, loss_config):
        config = _checked_config(loss_config)
        queue = config['queue']
        return cls(config['temperature'], config['epsilon'], config['num_iters'],
                   config['num_crops'], config['num_prototypes'], config['embedding_dim'],
                   local_queue_length=int(queue['queue_length']) // get_world_size(),
                   queue_start_iter=int(queue['start_iter']),
                   coherence_weight=config['coherence_weight'],
                   swav_weight=config['swav_weight'],
                   use_double_precision=config['use_double_precision'])

    # ---- queue -----------------------------------------------------------------------------
    def queue_used_this_step(self):
        """True when the coming forward mixes the queue into Sinkhorn."""
        return self.local_queue_length > 0 and int(self.num_iteration) >= self.queue_start_iter

    @torch.no_grad()
    def refresh_queue_scores(self, prototypes_weight):
        """queue_scores = queue_embeddings C^T with the current prototypes C (K, D)."""
        self.queue_scores.copy_(self.queue_embeddings.to(prototypes_weight.dtype)
                                @ prototypes_weight.t())
        self._queue_scores_iteration = int(self.num_iteration)

    @torch.no_grad()
    def _push_to_queue(self, embeddings):
        """FIFO: the newest rows first; a batch larger than the queue keeps its first L rows."""
        n = min(embeddings.shape[0], self.local_queue_length)
        self.queue_embeddings.copy_(torch.cat([embeddings[:n].to(self.queue_embeddings.dtype),
                                               self.queue_embeddings[:self.local_queue_length - n]]))

    # ---- loss ------------------------------------------------------------------------------
    def forward(self, output, target):
        embeddings, scores = self._unpack_output(output)
        superpixels, num_views = self._unpack_target(target, embeddings.shape[0])
        num_maps = embeddings.shape[0]
        num_images = num_maps // num_views
        use_queue = self.queue_used_this_step()

        regions = pool_regions(embeddings, scores, superpixels)
        loss_coherence = mean_coherence(regions, num_maps)

        in_view0 = regions.map_index < num_images
        view0_scores = regions.rep_scores[in_view0].detach()
        if use_queue:
            if self._queue_scores_iteration != int(self.num_iteration):
                raise RuntimeError(
                    'dense_swav_loss: the queue scores were not refreshed for this iteration. '
                    'Add vissl_plugins.vice.dense_swav_hooks.DenseSwAVQueueScoresHook to the '
                    'run (densessl_hook_generator does so when LOSS.name is dense_swav_loss), '
                    'or call loss.refresh_queue_scores(prototypes.weight) before the loss.')
            view0_scores = torch.cat([view0_scores, self.queue_scores.to(view0_scores.dtype)])
        assignments = sinkhorn_knopp(view0_scores, self.epsilon, self.num_iters,
                                     self.use_double_precision)[:int(in_view0.sum())]
        loss_swav = self._swav_term(regions, assignments, in_view0, num_images, num_views)

        loss = (self.coherence_weight * loss_coherence + self.swav_weight * loss_swav) / 2
        self.last_terms = {'coherence': float(loss_coherence.detach()),
                           'swav': float(loss_swav.detach()),
                           'regions_per_map': regions.region_id.numel() / num_maps}
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f'dense_swav_loss is not finite at iteration {int(self.num_iteration)}: '
                f'coherence {self.last_terms["coherence"]}, swav {self.last_terms["swav"]}, '
                f'{regions.region_id.numel()} regions in {num_maps} maps. Lower the learning '
                f'rate or check the inputs for NaN.')
        self.num_iteration += 1
        if use_queue:
            self._push_to_queue(regions.rep_embedding[in_view0])
        return loss

    def _swav_term(self, regions, assignments, in_view0, num_images, num_views):
        """Mean over views 1..V-1 (that have matched regions) of the pooled cross-entropy."""
        image = regions.map_index % num_images
        view = torch.div(regions.map_index, num_images, rounding_mode='floor')
        image_key = image * regions.id_span + regions.region_id  # one key per (image, id)
        view0_keys = image_key[in_view0]                          # sorted: regions are sorted
        position = torch.searchsorted(view0_keys, image_key).clamp(max=max(len(view0_keys) - 1, 0))
        if len(view0_keys):
            matched = ~in_view0 & (view0_keys[position] == image_key)
        else:
            matched = torch.zeros_like(in_view0)
        log_p = F.log_softmax(regions.rep_scores[matched] / self.temperature, dim=1)
        cross_entropy = -(assignments[position[matched]] * log_p).sum(dim=1)
        per_view_sum = cross_entropy.new_zeros(num_views).index_add(0, view[matched],
                                                                    cross_entropy)
        per_view_count = torch.bincount(view[matched], minlength=num_views)
        has_terms = per_view_count > 0
        if not bool(has_terms.any()):
            logging.warning('dense_swav_loss: no region of views 1..V-1 matches a view-0 region; '
                            'the swav term is 0 for this batch')
            return regions.rep_scores.sum() * 0.0
        return (per_view_sum[has_terms] / per_view_count[has_terms]).mean()

    def _unpack_output(self, output):
        if isinstance(output, (list, tuple)) and len(output) == 1:
            output = output[0]  # [[embeddings, scores]] from a model not unwrapped by VISSL
        if not (isinstance(output, (list, tuple)) and len(output) == 2):
            raise TypeError('dense_swav_loss expects the dense_swav_head output '
                            '[embeddings (B, D, H, W), scores (B, K, H, W)]')
        embeddings, scores = output
        if embeddings.shape[1] != self.embedding_dim or scores.shape[1] != self.num_prototypes:
            raise DenseSwAVConfigError(
                f'dense_swav_loss: the head gives D={embeddings.shape[1]}, '
                f'K={scores.shape[1]}, the loss config says embedding_dim='
                f'{self.embedding_dim}, num_prototypes={self.num_prototypes}; set '
                f'config.LOSS.dense_swav_loss.{{embedding_dim,num_prototypes}} to the head\'s')
        return embeddings, scores

    def _unpack_target(self, target, num_maps):
        num_views = self.num_crops
        if isinstance(target, dict):
            num_views = int(target.get('num_views', num_views))
            superpixels = target['superpixels']
        else:
            superpixels = target
        if num_views < 2 or num_maps % num_views:
            raise DenseSwAVConfigError(
                f'dense_swav_loss: {num_maps} maps are not num_views={num_views} views of the '
                f'same images; set config.LOSS.dense_swav_loss.num_crops to the number of views')
        return superpixels, num_views

    def __repr__(self):
        return (f'DenseSwAVLoss(temperature={self.temperature}, epsilon={self.epsilon}, '
                f'num_iters={self.num_iters}, num_prototypes={self.num_prototypes}, '
                f'local_queue_length={self.local_queue_length}, '
                f'queue_start_iter={self.queue_start_iter})')
