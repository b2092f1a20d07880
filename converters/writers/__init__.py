"""Writers: one function per target format, turning a ``CanonicalCheckpoint`` into what
gets saved, together with the target's FULL expected key list.

``WRITERS`` maps a format name (``--dst-format``) to ``writer(ckpt) -> WriterOutput``. A
writer only builds; ``converters.convert`` checks ``output.state_dict`` against
``output.expected`` (every key required) and ``output.optional`` (allowed, not required),
reports, refuses or saves ``output.payload`` atomically. Add a format with::

    from converters.writers import WriterOutput, register_writer

    @register_writer('detectron2')
    def write_detectron2(ckpt):
        ...
        return WriterOutput(payload, state_dict, expected)
"""
from dataclasses import dataclass, field

WRITERS = {}


@dataclass
class WriterOutput:
    """``payload``: the object ``torch.save`` writes. ``state_dict``: its tensors in target
    names (what is checked). ``expected`` / ``optional``: target key -> shape pattern
    (``None`` = any size). ``dropped_keys``: canonical keys the target has no place for.
    ``notes``: lines for the report."""
    payload: object
    state_dict: dict
    expected: dict
    optional: dict = field(default_factory=dict)
    dropped_keys: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def register_writer(name):
    """Decorator: register ``fn(ckpt: CanonicalCheckpoint) -> WriterOutput`` as ``name``."""
    def register(fn):
        if name in WRITERS:
            raise ValueError(f'writer {name!r} is already registered ({WRITERS[name]})')
        WRITERS[name] = fn
        return fn
    return register


from converters.writers import mmseg, torchvision  # noqa: E402,F401  (registers them)
