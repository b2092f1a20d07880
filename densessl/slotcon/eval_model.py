"""SlotCon's evaluation model: one branch (the teacher, as SlotCon evaluates it) without loss
parts, giving every pixel's prototype scores.

    images (N, 3, H, W) -> ResNet up to layer4 (N, C, H/32, W/32) -> projector (N, D, ., .)
    -> grouping: dots (N, K, H/32, W/32), cosine of every pixel to every prototype

``SlotConEvalModel.from_state_dicts`` builds it from a torchvision-named ResNet state dict
(``converters``' canonical form; ``fc.*`` ignored) and a head state dict in ``slotcon_head``'s
names (``projector.mlp.{0,1,3,4,6}.*``, ``grouping.prototypes.weight``); sizes (arch, hidden
and output width, K) come from the tensors, and every key and shape is checked: a missing or
unexpected key is an error naming it. ``tools/viz_slots.py`` reads both from a checkpoint with
``converters.readers.slotcon.read_slotcon_branch``.
"""
import torch
import torch.nn as nn
import torchvision

from densessl.slotcon.grouping import SemanticGrouping
from densessl.slotcon.projector import DINOHead2d

# (blocks per layer, bottleneck blocks) -> torchvision ResNet
RESNET_ARCHS = {((2, 2, 2, 2), False): 'resnet18', ((3, 4, 6, 3), False): 'resnet34',
                ((3, 4, 6, 3), True): 'resnet50', ((3, 4, 23, 3), True): 'resnet101',
                ((3, 8, 36, 3), True): 'resnet152'}


class SlotConCheckpointError(RuntimeError):
    """Tensors that do not make a SlotCon evaluation model; the message names the keys."""


def _resnet_arch(state_dict):
    blocks = tuple(1 + max((int(k.split('.')[1]) for k in state_dict
                            if k.startswith(f'layer{i}.')), default=-1) for i in range(1, 5))
    bottleneck = any('.conv3.' in k for k in state_dict)
    arch = RESNET_ARCHS.get((blocks, bottleneck))
    if arch is None:
        raise SlotConCheckpointError(f'the encoder is no torchvision ResNet (blocks per layer '
                                     f'{blocks})')
    return arch


def _load_checked(module, state_dict, what):
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(f'{k} {tuple(state_dict[k].shape)} vs {tuple(expected[k].shape)}'
                        for k in set(expected) & set(state_dict)
                        if tuple(state_dict[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or mismatched:
        def show(keys):
            return ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        raise SlotConCheckpointError(
            f'{what}: {len(missing)} missing [{show(missing)}], {len(unexpected)} unexpected '
            f'[{show(unexpected)}], {len(mismatched)} shape mismatches [{show(mismatched)}]')
    module.load_state_dict(state_dict, strict=True)


class SlotConEvalModel(nn.Module):
    """encoder (ResNet to layer4) -> projector -> grouping; forward gives dots (N, K, h, w)."""

    def __init__(self, encoder, projector, grouping, arch=''):
        super().__init__()
        self.encoder, self.projector, self.grouping = encoder, projector, grouping
        self.arch = arch

    @classmethod
    def from_state_dicts(cls, resnet_state, head_state, temperature=0.07):
        resnet_state = {k: v for k, v in resnet_state.items() if not k.startswith('fc.')}
        arch = _resnet_arch(resnet_state)
        net = getattr(torchvision.models, arch)(weights=None)
        net.fc = nn.Identity()
        _load_checked(net, resnet_state, f'encoder ({arch})')
        encoder = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1,
                                net.layer2, net.layer3, net.layer4)
        for key in ('projector.mlp.0.weight', 'projector.mlp.3.weight',
                    'grouping.prototypes.weight'):
            if key not in head_state:
                raise SlotConCheckpointError(f'head: {key} missing (found: '
                                             f'{", ".join(sorted(head_state)[:6])} ...)')
        hidden, in_dim = head_state['projector.mlp.0.weight'].shape[:2]
        num_prototypes, dim = head_state['grouping.prototypes.weight'].shape
        head = nn.Module()
        head.projector = DINOHead2d(in_dim, hidden, dim)
        head.grouping = SemanticGrouping(num_prototypes, dim, temperature)
        _load_checked(head, head_state, 'head')
        return cls(encoder, head.projector, head.grouping, arch).eval()

    @property
    def num_prototypes(self):
        return self.grouping.num_prototypes

    def describe(self):
        return (f'{self.arch} encoder, projector to {self.grouping.dim}-d, '
                f'{self.num_prototypes} prototypes')

    @torch.no_grad()
    def forward(self, images):
        """(N, 3, H, W) -> dots (N, K, H/32, W/32)."""
        return self.grouping(self.projector(self.encoder(images)))[1]
