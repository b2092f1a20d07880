"""Benchmark: one SlotCon training step built from densessl.slotcon against a straightforward
reference step (benchmarks/slotcon_reference.py), in the same process, on CPU.

One step = EMA update of the teacher, student and teacher forwards of both crops, loss,
backward (no optimiser step; spec 6.8 measured the original at 13.4 s forward incl. teacher +
11.6 s backward + 2.2 s LARS for batch 8 x 2 x 224 px, ResNet-50, fp32). Shapes of the
original: torchvision ResNet (layer4 output), projector DINOHead2d C -> 4096 -> 4096 -> 256,
K = 256 prototypes, predictor DINOHead1d 256 -> 4096 -> 4096 -> 256.

Both get the same weights and the same inputs (random crops, overlap boxes and flips from a
seeded generator). Before any timing: (1) float64 copies of both, one step on a small input
(batch 2 x 2 x --check-size px), must give the same loss (1e-9) and the same gradients on four
parameters (1e-7 of the largest), or the benchmark stops; (2) one float32 step of each on the
timed input must give the same loss (1e-5) and centre; its gradient differences are reported
only: with random weights the float32 gradients of either implementation are ~1-2 % away
from float64 (ill-conditioned cosines at temperatures 0.07 / 0.1). Then --warmup and
--iters steps of each, interleaved (core, reference, core, ...) so that load from other
processes hits both alike. images/s = batch / (seconds per step), as in spec 6.8.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/slotcon_step.py [--batch 8] [--size 224]
        [--arch resnet50] [--iters 3] [--warmup 1] [--threads 2] [--check-size 96]
        [--layouts contiguous channels_last] [--json out.json]
"""
import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from slotcon_reference import ReferenceSlotCon  # noqa: E402

from densessl.slotcon import (DINOHead1d, DINOHead2d, SemanticGrouping, SlotConBranch,  # noqa: E402
                              batch_center, ema_update_, slotcon_loss, teacher_momentum,
                              updated_center)

CHANNELS = {'resnet18': 512, 'resnet34': 512, 'resnet50': 2048, 'resnet101': 2048}


def make_trunk(arch):
    """torchvision ResNet up to layer4: images (B, 3, h, w) -> (B, C, h/32, w/32)."""
    net = getattr(torchvision.models, arch)(weights=None)
    return nn.Sequential(*list(net.children())[:-2])


class CoreSlotConStep:
    """Student / teacher / predictor / centre from densessl.slotcon and the step on them."""

    def __init__(self, arch, num_prototypes, dim_hidden, dim_out, total_steps, channels_last):
        channels = CHANNELS[arch]
        self.student = SlotConBranch(make_trunk(arch), DINOHead2d(channels, dim_hidden, dim_out),
                                     SemanticGrouping(num_prototypes, dim_out, temperature=0.07),
                                     channels_last=channels_last)
        self.teacher = copy.deepcopy(self.student).requires_grad_(False)
        self.predictor = DINOHead1d(dim_out, dim_hidden, dim_out)
        self.center = torch.zeros(1, num_prototypes)
        self.step, self.total_steps = 0, total_steps

    def parameters(self):
        return list(self.student.parameters()) + list(self.predictor.parameters())

    def to(self, dtype):
        for part in (self.student, self.teacher, self.predictor):
            part.to(dtype)
        self.center = self.center.to(dtype)
        return self

    def forward(self, crops, boxes, flips):
        student = [self.student(crops[v], boxes[v], flips[v]) for v in range(2)]
        with torch.no_grad():
            ema_update_(self.teacher, self.student, teacher_momentum(self.step, self.total_steps))
            self.step += 1
            teacher = [self.teacher(crops[v], boxes[v], flips[v]) for v in range(2)]
        loss, _ = slotcon_loss(student, teacher, self.predictor, self.center)
        self.center = updated_center(self.center, batch_center([t.dots for t in teacher]))
        return loss


def reference_like(core, arch, num_prototypes, dim_hidden, dim_out, total_steps):
    """The reference module with the core's weights and state (every key checked)."""
    ref = ReferenceSlotCon(lambda: make_trunk(arch), CHANNELS[arch], dim_hidden, dim_out,
                           num_prototypes, total_steps)
    pairs = [(ref.encoder_q, core.student.encoder), (ref.encoder_k, core.teacher.encoder),
             (ref.projector_q, core.student.projector), (ref.projector_k, core.teacher.projector),
             (ref.predictor_slot, core.predictor)]
    for mine, theirs in pairs:
        mine.load_state_dict(theirs.state_dict(), strict=True)
    with torch.no_grad():
        ref.prototypes_q.weight.copy_(core.student.grouping.prototypes.weight)
        ref.prototypes_k.weight.copy_(core.teacher.grouping.prototypes.weight)
        ref.center.copy_(core.center)
    ref.step = core.step
    return ref


def make_inputs(batch, size, seed=0):
    """Crops (2, B, 3, size, size); per view the overlap boxes (B, 4) in that crop's normalised
    coordinates (mirrored when flipped) and the flip flags (B,), from random crop pairs."""
    g = torch.Generator().manual_seed(seed)
    crops = torch.randn(2, batch, 3, size, size, generator=g)
    boxes, flips = torch.zeros(2, batch, 4), torch.zeros(2, batch, dtype=torch.bool)
    for b in range(batch):
        while True:
            corners = []
            for _ in range(2):
                w, h = (0.3 + 0.7 * torch.rand(2, generator=g)).tolist()
                x, y = (torch.rand(2, generator=g) * torch.tensor([1 - w, 1 - h])).tolist()
                corners.append((x, y, x + w, y + h))
            ox1, oy1 = max(c[0] for c in corners), max(c[1] for c in corners)
            ox2, oy2 = min(c[2] for c in corners), min(c[3] for c in corners)
            if ox2 - ox1 > 0.05 and oy2 - oy1 > 0.05:
                break
        for v, (x1, y1, x2, y2) in enumerate(corners):
            box = [(ox1 - x1) / (x2 - x1), (oy1 - y1) / (y2 - y1),
                   (ox2 - x1) / (x2 - x1), (oy2 - y1) / (y2 - y1)]
            flip = bool(torch.rand(1, generator=g) < 0.5)
            if flip:
                box = [1 - box[2], box[1], 1 - box[0], box[3]]
            boxes[v, b], flips[v, b] = torch.tensor(box), flip
    return crops, boxes, flips


def timed_step(forward, params):
    for p in params:
        p.grad = None
    start = time.perf_counter()
    loss = forward()
    middle = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    return float(loss.detach()), middle - start, end - middle


def check_equal(core, ref, inputs, ref_loss, grad_tolerance):
    """One step of ``core`` from the state that ``ref`` took its step (loss ``ref_loss``) from:
    the same loss (relative 1e-5 at fp32, 1e-9 at fp64) and the same new centre, or exit; the
    largest gradient difference relative to the largest gradient on four parameters, checked
    against ``grad_tolerance`` (None: only reported)."""
    crops, boxes, flips = inputs
    core_loss = timed_step(lambda: core.forward(crops, boxes, flips), core.parameters())[0]
    grads = {'encoder conv1': (core.student.encoder[0].weight, ref.encoder_q[0].weight),
             'projector last': (core.student.projector.mlp[6].weight, ref.projector_q.mlp[6].weight),
             'prototypes': (core.student.grouping.prototypes.weight, ref.prototypes_q.weight),
             'predictor first': (core.predictor.mlp[0].weight, ref.predictor_slot.mlp[0].weight)}
    relative = {}
    for name, (mine, theirs) in grads.items():
        scale = float(theirs.grad.abs().max())
        relative[name] = float((mine.grad - theirs.grad).abs().max()) / scale
        if grad_tolerance is not None and relative[name] > grad_tolerance:
            raise SystemExit(f'gradients differ on {name}: max |diff| / max |grad| = '
                             f'{relative[name]:.3g} > {grad_tolerance}')
    loss_tolerance = 1e-9 if core.center.dtype == torch.float64 else 1e-5
    if abs(core_loss - ref_loss) > loss_tolerance * max(1.0, abs(ref_loss)):
        raise SystemExit(f'losses differ: core {core_loss!r}, reference {ref_loss!r}')
    torch.testing.assert_close(core.center, ref.center.to(core.center.dtype))
    return {'loss': core_loss, 'reference_loss': ref_loss,
            'abs_loss_diff': abs(core_loss - ref_loss),
            'max_rel_grad_diff': max(relative.values()), 'rel_grad_diff': relative}


def check_float64(core, ref, batch, size):
    """Copies of ``core`` and ``ref`` in float64 on a small input (batch x 2 x size px): loss
    and gradients equal to 1e-9 / 1e-7. In float32 the gradients of a randomly initialised
    ResNet-50 SlotCon are ill-conditioned (~1-2 % from float64 in either implementation), so
    float32 can only compare losses; float64 shows that the two compute the same function."""
    inputs = [t.double() if t.is_floating_point() else t for t in make_inputs(batch, size, seed=1)]
    ref64 = copy.deepcopy(ref).double()
    ref_loss = timed_step(lambda: ref64(tuple(inputs)),
                          [p for p in ref64.parameters() if p.requires_grad])[0]
    core64 = copy.deepcopy(core).to(torch.float64)
    return check_equal(core64, ref64, inputs, ref_loss, grad_tolerance=1e-7)


def summary(times, batch):
    totals = [f + b for f, b in times]
    return {'step_s': statistics.median(totals), 'step_s_all': totals,
            'forward_s': statistics.median(f for f, _ in times),
            'backward_s': statistics.median(b for _, b in times),
            'images_per_s': batch / statistics.median(totals)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--arch', default='resnet50', choices=sorted(CHANNELS))
    parser.add_argument('--prototypes', type=int, default=256)
    parser.add_argument('--hidden', type=int, default=4096)
    parser.add_argument('--dim', type=int, default=256)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--layouts', nargs='+', default=['contiguous', 'channels_last'],
                        choices=['contiguous', 'channels_last'],
                        help='memory layouts of the core step to time (the reference: contiguous)')
    parser.add_argument('--check-size', type=int, default=96,
                        help='crop size of the float64 equality check (batch 2)')
    parser.add_argument('--json', help='also write the result here')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    total_steps = 1000
    build = lambda layout: CoreSlotConStep(args.arch, args.prototypes, args.hidden, args.dim,  # noqa: E731
                                           total_steps, channels_last=layout == 'channels_last')
    cores = {layout: build(layout) for layout in args.layouts}
    first = cores[args.layouts[0]]
    for core in cores.values():   # the same weights everywhere
        core.student.load_state_dict(first.student.state_dict())
        core.teacher.load_state_dict(first.teacher.state_dict())
        core.predictor.load_state_dict(first.predictor.state_dict())
    ref = reference_like(first, args.arch, args.prototypes, args.hidden, args.dim, total_steps)
    inputs = make_inputs(args.batch, args.size)
    crops, boxes, flips = inputs
    ref_params = [p for p in ref.parameters() if p.requires_grad]
    checks64 = {layout: check_float64(core, ref, 2, args.check_size)
                for layout, core in cores.items()}
    ref_loss = timed_step(lambda: ref((crops, boxes, flips)), ref_params)[0]
    checks = {layout: check_equal(core, ref, inputs, ref_loss, grad_tolerance=None)
              for layout, core in cores.items()}

    steps = {'reference': (lambda: ref((crops, boxes, flips)), ref_params)}
    for layout, core in cores.items():
        steps[f'core {layout}'] = (lambda core=core: core.forward(crops, boxes, flips),
                                   core.parameters())
    runs = {name: [] for name in steps}
    for i in range(args.warmup + args.iters):
        for name, (fn, params) in steps.items():   # interleaved: load hits all alike
            _, fwd, bwd = timed_step(fn, params)
            if i >= args.warmup:
                runs[name].append((fwd, bwd))
    result = {'arch': args.arch, 'batch': args.batch, 'size': args.size,
              'prototypes': args.prototypes, 'threads': args.threads, 'iters': args.iters,
              'warmup': args.warmup, 'torch': torch.__version__, 'nproc': os.cpu_count(),
              'load_average_after': os.getloadavg(),
              'machine': platform.processor() or platform.machine(), 'checks': checks,
              'checks_float64': checks64,
              'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}
    result.update({name: summary(times, args.batch) for name, times in runs.items()})
    r = result['reference']
    print(f'SlotCon step, {args.arch}, batch {args.batch} x 2 crops x {args.size} px, '
          f'K={args.prototypes}, {args.threads} threads, median of {args.iters} '
          f'(after {args.warmup} warm-up), load average {result["load_average_after"][0]:.1f}')
    print('| arch | batch x crops x px | threads | step | s/step (fwd + bwd) | img/s | '
          'vs reference | fp32 \\|loss diff\\| | fp32 max rel. grad diff | '
          'fp64 \\|loss diff\\| | fp64 max rel. grad diff |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for name in steps:
        c = result[name]
        check = checks.get(name.replace('core ', ''))
        check64 = checks64.get(name.replace('core ', ''))
        diffs = (f'{check["abs_loss_diff"]:.1e} | {check["max_rel_grad_diff"]:.1e} | '
                 f'{check64["abs_loss_diff"]:.1e} | {check64["max_rel_grad_diff"]:.1e}'
                 if check else '- | - | - | -')
        print(f'| {args.arch} | {args.batch} x 2 x {args.size} | {args.threads} | {name} | '
              f'{c["step_s"]:.2f} ({c["forward_s"]:.2f} + {c["backward_s"]:.2f}) | '
              f'{c["images_per_s"]:.3f} | {c["images_per_s"] / r["images_per_s"]:.2f}x | {diffs} |')
    print(json.dumps(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
