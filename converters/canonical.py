"""``CanonicalCheckpoint``: what every reader returns and every writer takes.

``state_dict``: torchvision ResNet names (see ``canonical_resnet``), tensors on CPU, in the
source's order; may still contain wrong keys: the writer's check finds them.
``source_format`` / ``source_path``: where it came from.
``dropped_keys``: source tensors deliberately left out (e.g. VISSL ``heads.*``), reported.
``notes``: lines for the report (e.g. ignored training state, a trusted-input load).
``extras``: method-specific tensors beside the ResNet, ``{part name: {key: tensor}}`` (e.g.
ViCE's DeepLabV3+ ASPP + decoder, ``converters.deeplabv3plus_head``); a writer either maps a
part or drops it and reports it.
``arch``: set by ``convert`` (detected or given) before a writer sees it.
"""
import os.path as osp
from dataclasses import dataclass, field


@dataclass
class CanonicalCheckpoint:
    state_dict: dict
    source_format: str
    source_path: str
    dropped_keys: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    arch: str = None

    def extra_keys(self):
        """Every tensor of ``extras`` as ``'<part>/<key>'`` (for reports of dropped parts)."""
        return [f'{part}/{key}' for part, tensors in self.extras.items() for key in tensors]

    def meta(self):
        """The metadata written beside converted tensors (mmseg format's ``meta``)."""
        return {'source_format': self.source_format, 'source_path': osp.abspath(self.source_path),
                'arch': self.arch, 'converter': 'densessl',
                'dropped_keys': list(self.dropped_keys)}
