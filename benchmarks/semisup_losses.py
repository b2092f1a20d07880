"""Benchmark: ReCo and U2PL contrastive losses of densessl.semisup against original-style loops.

The references (benchmarks/semisup_reference.py) are straightforward losses in the originals'
structure; both run in the same process on the same inputs.

Sizes of spec shared/specs/semisup.md 5.8: a batch of 4 labelled + 4 unlabelled images, 19
classes, 256-d representations at 128 x 128 (1/4 of 512 x 512 crops); ReCo with Q = 256
queries and N = 512 negatives, U2PL with Q = 256, N = 50 and full queues (30000 per class,
50000 for class 0). The spec measured the originals at 17.3 s (ReCo) and 1.85 s (U2PL, incl.
the queue update, with its shipped negative rule) forward + backward on 2 CPU threads.

Inputs (fixed seed): label maps made of 16 x 16-pixel blocks of random classes (so all 19
classes are present), representations = noise + a per-class mean, probabilities with the
pixel's class boosted (ReCo: student softmax, about half of the valid pixels hard; U2PL:
teacher softmax). ReCo: labelled pixels valid except for void blocks, unlabelled ones where a
random "teacher confidence" is >= 0.7. U2PL: labels and entropy masks from
``contrastive_targets`` (alpha = 20 %, epoch 0) at 4x the feature size, nearest-downsampled.

U2PL's memory bank is brought to a realistic state first: every queue is filled to its
capacity with random keys, the state after the first few iterations of training (under the
paper's negative rule a 4 + 4 batch brings ~12-19k keys per class, spec 5.5, so the queues are
full after two or three steps). It stays full, so the indices drawn once stay valid. Core and
reference hold the same content (a ``ClassMemoryBank`` and a list of CPU tensors), every call
pushes the batch's negatives into both, and the calls alternate, so they stay in step.

The random draws are made once (``sample_reco_indices`` / ``sample_u2pl_indices`` with a
seeded generator) and injected into both. Before timing, one call of each on the timed
inputs must give the same loss (relative 1e-5) and the same gradient w.r.t. the student
representation (max |diff| <= 1e-4 of max |grad|), and for U2PL the same new-key counts and
the same queue contents, or the benchmark stops. Then --warmup and --repeats calls of each,
interleaved (core, reference, core, ...); reported: the median (the speed-up and the targets
use it), the best, and the median kernel CPU time of a call (ru_stime: mostly page faults on
fresh large allocations, a big and load-dependent share on a busy machine). The rows "core,
own draws" time the core drawing its own indices from a generator (what training runs), for
information. --u2pl-bug-compat runs U2PL with the original's three bugs in both (its shipped
negative rule finds far fewer keys: the setting of the spec's 1.85 s).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/semisup_losses.py [--threads 2] [--repeats 3]
        [--warmup 1] [--size 128] [--device cpu|cuda] [--losses reco u2pl]
        [--u2pl-bug-compat] [--json out.json]
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from semisup_reference import (reference_reco_loss,  # noqa: E402
                               reference_u2pl_contrastive_loss)

from densessl.semisup.memory_bank import ClassMemoryBank  # noqa: E402
from densessl.semisup.reco_loss import reco_loss, sample_reco_indices  # noqa: E402
from densessl.semisup.u2pl_loss import (BUGS, contrastive_targets, label_onehot,  # noqa: E402
                                        low_entropy_percent, sample_u2pl_indices,
                                        u2pl_contrastive_loss)

IGNORE = 255
BLOCK = 16                       # label maps: blocks of BLOCK x BLOCK feature pixels
RECO = dict(strong_threshold=0.97, temperature=0.5, num_queries=256, num_negatives=512)
U2PL = dict(num_queries=256, num_negatives=50, temperature=0.5, low_rank=3, high_rank=20,
            current_class_threshold=0.3, current_class_negative_threshold=1.0)
TARGETS = {'reco': 30.0, 'u2pl': 5.0}
SPEC_ORIGINAL_S = {'reco': 17.3, 'u2pl': 1.85}
LOSS_RTOL, GRAD_RTOL = 1e-5, 1e-4


# ----------------------------------------------------------------------------- inputs
def block_labels(num, size, num_classes, g, void_fraction=0.0):
    """(num, size, size) long: square blocks of random classes (IGNORE for a share of blocks)."""
    cells = max(1, size // BLOCK)
    grid = torch.randint(num_classes, (num, 1, cells, cells), generator=g).float()
    if void_fraction:
        grid[torch.rand(grid.shape, generator=g) < void_fraction] = IGNORE
    return F.interpolate(grid, size=(size, size), mode='nearest')[:, 0].long()


def features(labels, class_means, g):
    """(B, D, h, w) = unit noise + the class mean of each pixel's label (0 for void)."""
    num, height, width = labels.shape
    dim = class_means.shape[1]
    means = torch.cat([class_means, class_means.new_zeros(1, dim)])
    index = torch.where(labels == IGNORE, class_means.shape[0], labels)
    return torch.randn(num, dim, height, width, generator=g) + means[index].permute(0, 3, 1, 2)


def boosted_softmax(labels, num_classes, boost, noise, g):
    """(B, C, h, w) softmax of noise * N(0, 1) logits with ``boost`` added to the label's class."""
    num, height, width = labels.shape
    logits = noise * torch.randn(num, num_classes, height, width, generator=g)
    hot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    return torch.softmax(logits + boost * hot * (labels != IGNORE)[:, None], dim=1)


def make_reco_inputs(num_labeled, num_unlabeled, num_classes, dim, size, seed):
    """rep (B, D, h, w) leaf, one-hot label (B, C, h, w), mask (B, h, w), prob (B, C, h, w)."""
    g = torch.Generator().manual_seed(seed)
    num = num_labeled + num_unlabeled
    labels = torch.cat([block_labels(num_labeled, size, num_classes, g, void_fraction=0.05),
                        block_labels(num_unlabeled, size, num_classes, g)])
    label = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).float()
    label = label * (labels != IGNORE)[:, None]
    confidence = 1.0 - 0.6 * torch.rand(num_unlabeled, size, size, generator=g) ** 2
    mask = torch.cat([labels[:num_labeled] != IGNORE, confidence >= 0.7]).float()
    rep = features(labels, torch.randn(num_classes, dim, generator=g), g)
    prob = boosted_softmax(labels, num_classes, boost=7.0, noise=1.0, g=g)
    return rep, label, mask, prob


def make_u2pl_inputs(num_labeled, num_unlabeled, num_classes, dim, size, seed):
    """The contrastive loss's inputs at feature size h = w = size, from labels at 4x that."""
    g = torch.Generator().manual_seed(seed)
    num = num_labeled + num_unlabeled
    full = 4 * size
    labels_l = block_labels(num_labeled, full, num_classes, g, void_fraction=0.05)
    blocks_u = block_labels(num_unlabeled, size, num_classes, g)
    small_l = labels_l[:, ::4, ::4]
    labels_small = torch.cat([small_l, blocks_u])
    logits = torch.log(boosted_softmax(labels_small, num_classes, boost=4.0, noise=1.5, g=g))
    prob_teacher = torch.softmax(logits, dim=1)
    logits_u = F.interpolate(logits[num_labeled:], size=(full, full), mode='bilinear',
                             align_corners=True)
    pseudo_u = logits_u.argmax(dim=1)
    labels, low, high = contrastive_targets(labels_l, pseudo_u, logits_u,
                                            low_entropy_percent(0, 200), (size, size))
    class_means = torch.randn(num_classes, dim, generator=g)
    rep_teacher = features(labels, class_means, g)
    rep = rep_teacher + 0.3 * torch.randn(rep_teacher.shape, generator=g)
    return dict(rep=rep, rep_teacher=rep_teacher, prob_teacher=prob_teacher, labels=labels,
                low_mask=low, high_mask=high, num_labeled=num_labeled)


def full_bank(num_classes, dim, device, seed):
    """A ClassMemoryBank with U2PL's capacities, every queue filled with random keys."""
    bank = ClassMemoryBank(num_classes, dim).to(device)
    g = torch.Generator().manual_seed(seed)
    capacities = bank.capacities.cpu()
    class_ids = torch.repeat_interleave(torch.arange(num_classes), capacities)
    keys = torch.randn(int(capacities.sum()), dim, generator=g)
    bank.push_flat(keys.to(device), class_ids.to(device))
    assert torch.equal(bank.counts, bank.capacities)
    return bank


def draw_u2pl_indices(batch, bank, bugs, seed, device):
    """U2PLIndices for this batch: one row per valid class; the anchor counts from the one-hot
    labels (core's ``label_onehot``), the low mask and the teacher probabilities, the queue
    sizes from the bank (full before the call, hence full after it)."""
    labels, num_labeled = batch['labels'], batch['num_labeled']
    num_classes = batch['prob_teacher'].shape[1]
    onehot = torch.cat([label_onehot(part, num_classes, IGNORE, 'onehot' in bugs)
                        for part in (labels[:num_labeled], labels[num_labeled:])])
    low_valid = onehot & batch['low_mask'][:, None]
    valid = torch.nonzero(low_valid.sum(dim=(0, 2, 3)) > 0).squeeze(1)
    anchors = (low_valid & (batch['prob_teacher'] > U2PL['current_class_threshold']))
    anchor_counts = anchors.sum(dim=(0, 2, 3))
    anchor_class = torch.arange(valid.numel(), device=valid.device) if 'anchor_index' in bugs \
        else valid
    generator = torch.Generator(device=device).manual_seed(seed)
    indices = sample_u2pl_indices(anchor_counts[anchor_class], bank.counts[valid],
                                  U2PL['num_queries'], U2PL['num_negatives'], generator)
    return indices, valid, anchor_counts[anchor_class]


# ----------------------------------------------------------------------------- timing
def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_call(fn, rep, device):
    """(loss value, forward s, backward s, kernel CPU s) of ``fn()`` -> scalar loss with a
    graph to rep. Kernel CPU time (ru_stime) is mostly page faults on fresh allocations."""
    rep.grad = None
    synchronize(device)
    kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    start = time.perf_counter()
    loss = fn()
    synchronize(device)
    middle = time.perf_counter()
    loss.backward()
    synchronize(device)
    end = time.perf_counter()
    kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - kernel
    return float(loss.detach()), middle - start, end - middle, kernel


def compare(name, core_loss, ref_loss, core_grad, ref_grad):
    """The equality check before timing: stop unless loss and gradient agree."""
    loss_diff = abs(core_loss - ref_loss)
    scale = float(ref_grad.abs().max())
    grad_diff = float((core_grad - ref_grad).abs().max()) / max(scale, 1e-30)
    if not (loss_diff <= LOSS_RTOL * max(1.0, abs(ref_loss)) and grad_diff <= GRAD_RTOL
            and scale > 0):
        raise SystemExit(f'{name}: core and reference differ: loss {core_loss!r} vs '
                         f'{ref_loss!r}, max |grad diff| / max |grad| = {grad_diff:.3g} '
                         f'(max |grad| {scale:.3g})')
    return {'loss': core_loss, 'reference_loss': ref_loss, 'abs_loss_diff': loss_diff,
            'max_rel_grad_diff': grad_diff}


def run_interleaved(calls, rep, device, warmup, repeats):
    """calls: {name: fn}; each run warmup + repeats times, interleaved;
    -> {name: [(forward s, backward s, kernel CPU s)]}."""
    times = {name: [] for name in calls}
    for i in range(warmup + repeats):
        for name, fn in calls.items():
            timing = timed_call(fn, rep, device)[1:]
            if i >= warmup:
                times[name].append(timing)
    return times


def summary(times):
    totals = [f + b for f, b, _ in times]
    return {'total_s': statistics.median(totals), 'total_s_all': totals,
            'best_s': min(totals),
            'forward_s': statistics.median(f for f, _, _ in times),
            'backward_s': statistics.median(b for _, b, _ in times),
            'kernel_cpu_s': statistics.median(k for _, _, k in times)}


# ----------------------------------------------------------------------------- the two losses
def bench_reco(args, device):
    rep, label, mask, prob = (t.to(device) for t in make_reco_inputs(
        args.labelled, args.unlabelled, args.classes, args.dim, args.size, args.seed))
    rep.requires_grad_(True)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    indices = sample_reco_indices(rep, label, mask, prob, generator=generator, **RECO)
    valid = (label * mask[:, None]).bool()
    hard = valid & (prob < RECO['strong_threshold'])
    info = {'present_classes': int(indices.classes.numel()),
            'valid_pixels': int(valid.sum()), 'hard_pixels': int(hard.sum())}

    core = lambda: reco_loss(rep, label, mask, prob, indices=indices, **RECO)  # noqa: E731
    ref = lambda: reference_reco_loss(rep, label, mask, prob, indices,  # noqa: E731
                                      RECO['strong_threshold'], RECO['temperature'])
    own_generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    own = lambda: reco_loss(rep, label, mask, prob, generator=own_generator,  # noqa: E731
                            **RECO)

    core_loss = timed_call(core, rep, device)[0]
    core_grad = rep.grad.clone()
    ref_loss = timed_call(ref, rep, device)[0]
    check = compare('ReCo', core_loss, ref_loss, core_grad, rep.grad)
    times = run_interleaved({'core': core, 'reference': ref, 'core, own draws': own}, rep,
                            device, args.warmup, args.repeats)
    return info, check, times


def bench_u2pl(args, device):
    bugs = BUGS if args.u2pl_bug_compat else frozenset()
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in make_u2pl_inputs(
        args.labelled, args.unlabelled, args.classes, args.dim, args.size, args.seed).items()}
    rep = batch['rep'].requires_grad_(True)
    bank = full_bank(args.classes, args.dim, device, args.seed + 2)
    capacities = bank.capacities.tolist()
    queues = [bank.ordered(c).cpu().clone() for c in range(args.classes)]  # the reference's
    indices, valid, anchor_counts = draw_u2pl_indices(batch, bank, bugs, args.seed, device)
    loss_args = (batch['rep_teacher'], batch['prob_teacher'], batch['labels'],
                 batch['low_mask'], batch['high_mask'], batch['num_labeled'])
    terms = {}

    def core():
        loss, t = u2pl_contrastive_loss(rep, *loss_args, bank, bug_compat=bugs,
                                        indices=indices, **U2PL)
        terms.update(t)
        return loss

    ref_new_keys = []

    def ref():
        loss, new_keys = reference_u2pl_contrastive_loss(
            rep, *loss_args, queues, capacities, indices, bugs=bugs,
            **{k: v for k, v in U2PL.items() if k not in ('num_queries', 'num_negatives')})
        ref_new_keys[:] = new_keys
        return loss

    own_bank = full_bank(args.classes, args.dim, device, args.seed + 2)
    own_generator = torch.Generator(device=device).manual_seed(args.seed + 1)
    own = lambda: u2pl_contrastive_loss(  # noqa: E731
        rep, *loss_args, own_bank, bug_compat=bugs, generator=own_generator, **U2PL)[0]

    core_loss = timed_call(core, rep, device)[0]
    core_grad = rep.grad.clone()
    ref_loss = timed_call(ref, rep, device)[0]
    check = compare('U2PL', core_loss, ref_loss, core_grad, rep.grad)
    if terms['new_keys'].tolist() != ref_new_keys:
        raise SystemExit(f'U2PL: new keys per class differ: core {terms["new_keys"].tolist()}, '
                         f'reference {ref_new_keys}')
    for c in range(args.classes):
        if not torch.equal(bank.ordered(c).cpu(), queues[c]):
            raise SystemExit(f'U2PL: queue {c} differs between core and reference')
    info = {'valid_classes': int(valid.numel()), 'used_classes': terms['num_used_classes'],
            'anchors_per_class_min_max': [int(anchor_counts.min()), int(anchor_counts.max())],
            'new_keys_per_class_min_max': [min(ref_new_keys), max(ref_new_keys)],
            'queue_sizes': sorted(set(capacities)), 'bug_compat': sorted(bugs)}
    times = run_interleaved({'core': core, 'reference': ref, 'core, own draws': own}, rep,
                            device, args.warmup, args.repeats)
    return info, check, times


# ----------------------------------------------------------------------------- main
def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--size', type=int, default=128, help='feature map size h = w')
    parser.add_argument('--labelled', type=int, default=4)
    parser.add_argument('--unlabelled', type=int, default=4)
    parser.add_argument('--classes', type=int, default=19)
    parser.add_argument('--dim', type=int, default=256)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--losses', nargs='+', default=['reco', 'u2pl'], choices=['reco', 'u2pl'])
    parser.add_argument('--u2pl-bug-compat', action='store_true',
                        help="U2PL with the original's three bugs (shipped negative rule, "
                             'one-hot, anchor index) in core and reference')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='also write the result here')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
            else f'{platform.processor() or platform.machine()} CPU, {args.threads} threads')
    result = {'device': name, 'torch': torch.__version__, 'nproc': os.cpu_count(),
              'threads': args.threads, 'repeats': args.repeats, 'warmup': args.warmup,
              'batch': f'{args.labelled} + {args.unlabelled}', 'classes': args.classes,
              'dim': args.dim, 'size': args.size,
              'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
              'load_average_before': os.getloadavg()}
    benches = {'reco': bench_reco, 'u2pl': bench_u2pl}
    for loss in args.losses:
        info, check, times = benches[loss](args, device)
        result[loss] = {'info': info, 'check': check,
                        **{impl: summary(t) for impl, t in times.items()}}
        result[loss]['speedup'] = (result[loss]['reference']['total_s']
                                   / result[loss]['core']['total_s'])
        result[loss]['speedup_best'] = (result[loss]['reference']['best_s']
                                        / result[loss]['core']['best_s'])
        result[loss]['target'] = TARGETS[loss]
        result[loss]['target_met'] = result[loss]['speedup'] >= TARGETS[loss]
    result['load_average_after'] = os.getloadavg()

    print(f'Semi-supervised contrastive losses on {name}, batch {args.labelled} + '
          f'{args.unlabelled}, {args.classes} classes, D = {args.dim}, {args.size} x {args.size}, '
          f'median of {args.repeats} (after {args.warmup} warm-up), load average '
          f'{result["load_average_before"][0]:.1f} before, {result["load_average_after"][0]:.1f} '
          f'after')
    for loss in args.losses:
        print(f'{loss}: {json.dumps(result[loss]["info"])}')
    print('| loss | implementation | s fwd + bwd (fwd + bwd) | vs reference | best s | '
          'kernel CPU s | \\|loss diff\\| | max rel. grad diff |')
    print('|---|---|---|---|---|---|---|---|')
    for loss in args.losses:
        r = result[loss]
        for impl in ('reference', 'core', 'core, own draws'):
            t = r[impl]
            diffs = (f'{r["check"]["abs_loss_diff"]:.1e} | {r["check"]["max_rel_grad_diff"]:.1e}'
                     if impl == 'core' else '- | -')
            label = {'reco': 'ReCo', 'u2pl': 'U2PL'}[loss]
            print(f'| {label} | {impl} | {t["total_s"]:.3f} ({t["forward_s"]:.3f} + '
                  f'{t["backward_s"]:.3f}) | {r["reference"]["total_s"] / t["total_s"]:.1f}x | '
                  f'{t["best_s"]:.3f} | {t["kernel_cpu_s"]:.2f} | {diffs} |')
    for loss in args.losses:
        r = result[loss]
        best = r['reference']['best_s'] / r['core']['best_s']
        print(f'{loss}: core {r["speedup"]:.1f}x faster than the reference (best vs best '
              f'{best:.1f}x; target >= {r["target"]:.0f}x: '
              f'{"met" if r["target_met"] else "NOT met"}); loss '
              f'{r["check"]["loss"]:.6f}; spec 5.8 original {SPEC_ORIGINAL_S[loss]} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
