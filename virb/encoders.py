"""Encoders: the interface every encoder of the benchmark implements, the ResNet encoder,
and loading its weights with every key checked.

Interface (the original's ``ResNet50Encoder``, README "Custom Models"): ``forward(x)`` with
``x`` (B, 3, H, W) returns a dict of

=============  =====================================  =============================
key            shape (ResNet-50; ResNet-18/34)         what
=============  =====================================  =============================
``conv``       (B, 64, H/2, W/2)                       stem after ReLU (before pool)
``block1``     (B, 256 | 64, H/4, W/4)                 layer1
``block2``     (B, 512 | 128, H/8, W/8)                layer2
``block3``     (B, 1024 | 256, H/16, W/16)             layer3
``block4``     (B, 2048 | 512, H/32, W/32)             layer4
``embedding``  (B, 2048 | 512)                         global average pool of block4
=============  =====================================  =============================

and has ``channels``: ``{key: number of channels}`` for those keys (heads are sized from
it). A frame stack (B, T, 3, H, W) is folded to (B*T, 3, H, W) and every output unfolded to
(B, T, ...) (``fold_frames`` / ``unfold_frames``). A custom encoder is any ``nn.Module``
with that contract, built by an importable factory named in the experiment list
(``{factory: 'my_pkg.my_module:build', ...}``, see ``config``); ``check_encoder_outputs``
verifies it on a dummy batch before a job starts.

Weights (``load_resnet_weights``): any file ``tools/convert_checkpoint.py`` reads (the
format told from its keys, ``converters.readers.detect``) and the original's
``model.``-prefixed ViRB files, read by the converters' readers into torchvision names, then
compared with the architecture's FULL key list: a missing, unexpected or shape-mismatched
key is an error naming the file and the keys (the original's ``strict=False`` silently left
such an encoder random). ``fc.*`` is allowed and dropped.
"""
import hashlib
import importlib
import os.path as osp
from dataclasses import dataclass, field

import torch
import torchvision
from torch import nn

from converters.canonical_resnet import (ARCHS, STRUCTURES, backbone_shapes, compare,
                                         describe_structure, detect_arch, fc_patterns, is_fc)
from converters.errors import ConversionError
from converters.loading import load, preloaded
from converters.readers import READERS
from converters.readers.detect import detect_format
from converters.report import summarise
from virb.errors import VirbError

OUTPUT_KEYS = ('conv', 'block1', 'block2', 'block3', 'block4', 'embedding')
PIXEL_KEYS = ('conv', 'block1', 'block2', 'block3', 'block4')


def fold_frames(x):
    """(B, T, C, H, W) -> ((B*T, C, H, W), T); a 4-D batch passes with T = None."""
    if x.dim() == 5:
        b, t = x.shape[:2]
        return x.reshape(b * t, *x.shape[2:]), t
    return x, None


def unfold_frames(y, t):
    """(B*T, ...) -> (B, T, ...); ``t`` None leaves ``y`` as it is."""
    if t is None:
        return y
    return y.reshape(y.shape[0] // t, t, *y.shape[1:])


class ResNetEncoder(nn.Module):
    """A torchvision ResNet (the project's canonical naming) as a ViRB encoder.

    ``arch``: resnet18/34/50/101/152. ``forward(x)``: x (B, 3, H, W) or (B, T, 3, H, W)
    -> dict of ``OUTPUT_KEYS`` (module docstring). The weights live in ``self.model`` (a
    torchvision ResNet without ``fc``), so ``state_dict()`` keys are ``model.<torchvision
    name>``: the original ViRB's layout.
    """

    def __init__(self, arch='resnet50'):
        super().__init__()
        if arch not in STRUCTURES:
            raise VirbError(f'unknown encoder arch {arch!r}; one of {", ".join(ARCHS)}')
        self.arch = arch
        self.model = getattr(torchvision.models, arch)(weights=None)
        self.model.fc = nn.Identity()
        kind = STRUCTURES[arch][0]
        widths = (64, 128, 256, 512) if kind == 'basic' else (256, 512, 1024, 2048)
        self.channels = {'conv': 64, 'block1': widths[0], 'block2': widths[1],
                         'block3': widths[2], 'block4': widths[3], 'embedding': widths[3]}

    def forward(self, x):
        x, frames = fold_frames(x)
        m = self.model
        conv = m.relu(m.bn1(m.conv1(x)))
        block1 = m.layer1(m.maxpool(conv))
        block2 = m.layer2(block1)
        block3 = m.layer3(block2)
        block4 = m.layer4(block3)
        out = {'conv': conv, 'block1': block1, 'block2': block2, 'block3': block3,
               'block4': block4, 'embedding': torch.flatten(m.avgpool(block4), 1)}
        return {k: unfold_frames(v, frames) for k, v in out.items()}


@dataclass
class WeightsReport:
    """What loading a weight file found: the format (and how it was told), the arch, the
    tensors read / loaded, what was dropped (``fc``, heads) and the reader's notes."""
    path: str
    source_format: str
    arch: str
    structure: str
    num_loaded: int
    dropped_keys: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def lines(self):
        dropped = summarise(self.dropped_keys) if self.dropped_keys else '-'
        return ([f'weights: {self.path} ({self.source_format}; {self.arch}, '
                 f'{self.structure}): {self.num_loaded} tensors loaded, every key checked',
                 f'  dropped ({len(self.dropped_keys)}): {dropped}']
                + [f'  note: {n}' for n in self.notes])


def _read_canonical(path, log):
    """The file's tensors in torchvision names, via the converters' readers."""
    try:
        loaded = load(path, 'auto', trusted_pickle=True, log=log)
    except ConversionError as e:
        raise VirbError(f'encoder weights {path}: {e}') from e
    detection = detect_format(loaded.obj)
    if detection.format is None:
        raise VirbError(
            f'encoder weights {path}: not a ResNet checkpoint of a known format '
            f'({detection.evidence}; the keys look like {detection.layout}). Formats read: '
            f'{", ".join(READERS)} (tools/convert_checkpoint.py --src-format auto tells more)')
    with preloaded(path, loaded):
        try:
            ckpt = READERS[detection.format](path, log=log)
        except ConversionError as e:
            raise VirbError(f'encoder weights {path}: {e}') from e
    return ckpt, detection


def load_resnet_weights(path, arch=None, log=print):
    """Read ``path`` (any converters format or a ViRB ``model.`` file) and check it against
    ``arch`` (None: detected from the keys). Returns ``(state_dict in torchvision names
    without fc, WeightsReport)``; raises ``VirbError`` naming the file and keys on any
    missing, unexpected or mismatched key, or weights of another architecture."""
    if not osp.isfile(path):
        raise VirbError(f'encoder weights not found: {path}')
    ckpt, detection = _read_canonical(path, log)
    structure = describe_structure(ckpt.state_dict)
    detected, exact = detect_arch(ckpt.state_dict)
    if arch is None:
        if detected is None:
            raise VirbError(f'encoder weights {path}: no tensor matches a torchvision ResNet '
                            f'({structure})')
        arch = detected
    elif arch not in STRUCTURES:
        raise VirbError(f'unknown encoder arch {arch!r}; one of {", ".join(ARCHS)}')
    elif exact and detected != arch:
        raise VirbError(f'encoder weights {path} are a {detected} ({structure}), not the '
                        f'{arch} the experiment list asks for: weights of another '
                        f'architecture. Set arch: {detected}, or give {arch} weights')
    diff = compare(ckpt.state_dict, backbone_shapes(arch), fc_patterns(arch))
    if diff['missing'] or diff['unexpected'] or diff['mismatched']:
        parts = []
        if diff['missing']:
            parts.append(f"{len(diff['missing'])} missing keys: {summarise(diff['missing'])}")
        if diff['unexpected']:
            parts.append(f"{len(diff['unexpected'])} unexpected keys: "
                         f"{summarise(diff['unexpected'])}")
        if diff['mismatched']:
            parts.append(f"{len(diff['mismatched'])} shape mismatches: " + '; '.join(
                f"{m['key']} {m['shape']} vs {m['expected']}" for m in diff['mismatched'][:5]))
        raise VirbError(f'encoder weights {path} (read as {detection.format}) do not match '
                        f'{arch} (keys look like {structure}): ' + '; '.join(parts)
                        + '. Nothing was loaded: an encoder with random layers would give '
                          'meaningless results')
    state = {k: v for k, v in ckpt.state_dict.items() if not is_fc(k)}
    fc = [k for k in ckpt.state_dict if is_fc(k)]
    report = WeightsReport(path, detection.format, arch, structure, len(state),
                           dropped_keys=list(ckpt.dropped_keys) + fc, notes=list(ckpt.notes))
    return state, report


def build_resnet_encoder(arch=None, weights=None, seed=0, log=print):
    """``ResNetEncoder`` with ``weights`` loaded strictly (``load_resnet_weights``), or
    randomly initialised with ``seed`` when ``weights`` is None (``arch`` then required).
    Returns ``(encoder, WeightsReport or None)``."""
    if weights is None:
        torch.manual_seed(seed)
        return ResNetEncoder(arch or 'resnet50'), None
    state, report = load_resnet_weights(weights, arch, log=log)
    encoder = ResNetEncoder(report.arch)
    encoder.model.load_state_dict(state, strict=True)
    return encoder, report


def build_custom_encoder(factory, options):
    """Call ``'package.module:callable'`` with ``options``; the result must follow the
    interface (checked by ``check_encoder_outputs``)."""
    module_name, _, attr = factory.partition(':')
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise VirbError(f'encoder factory {factory!r} cannot be imported ({e}); expected '
                        f"'package.module:callable'") from e
    return fn(**options)


def check_encoder_outputs(encoder, size=(64, 64)):
    """Run a (1, 3, H, W) batch through ``encoder`` and check the interface; raises
    ``VirbError`` naming what is missing."""
    channels = getattr(encoder, 'channels', None)
    if not isinstance(channels, dict):
        raise VirbError(f'encoder {type(encoder).__name__} has no `channels` dict '
                        f'({{key: channels}} for {", ".join(OUTPUT_KEYS)})')
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        out = encoder(torch.zeros(1, 3, *size, device=next(encoder.parameters()).device))
    encoder.train(was_training)
    missing = [k for k in OUTPUT_KEYS if k not in out or k not in channels]
    if missing:
        raise VirbError(f'encoder {type(encoder).__name__} does not return (or give channels '
                        f'for) {", ".join(missing)}; the interface is {", ".join(OUTPUT_KEYS)}')
    for key in OUTPUT_KEYS:
        if out[key].shape[1] != channels[key]:
            raise VirbError(f'encoder {type(encoder).__name__}: output {key} has '
                            f'{out[key].shape[1]} channels, channels[{key!r}] says '
                            f'{channels[key]}')


def file_digest(path, chunk=1 << 22):
    """sha256 of a file's bytes (the cache and skip keys of a weight file)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()
