"""Writers: one function per target format, turning a ``CanonicalCheckpoint`` into what
gets saved, together with the target's FULL expected key list.

``WRITERS`` maps a format name (``--dst-format``) to ``writer(ckpt) -> WriterOutput``. A
writer only builds; ``converters.convert`` checks ``output.state_dict`` against
``output.expected`` (every key required) and ``output.optional`` (allowed, not required),
reports, refuses or saves ``output.payload`` atomically (``torch.save``, or the writer's
own ``output.save``). Formats: ``torchvision`` (writers/torchvision.py), ``mmseg``
(writers/mmseg.py), ``d2`` (writers/d2.py: detectron2's pickle), ``virb`` (writers/virb.py:
the original ViRB's ``model.``-prefixed encoder file). Add a format with::

    from converters.writers import WriterOutput, register_writer

    @register_writer('myformat', required_suffix=None)
    def write_myformat(ckpt):
        ...
        return WriterOutput(payload, state_dict, expected)

``required_suffix``: the output file name must end with it (checked before anything is
read), e.g. ``'.pkl'`` for d2, whose checkpointer tells a pickle from a torch file by name.
"""
from dataclasses import dataclass, field

WRITERS = {}


@dataclass
class WriterOutput:
    """``payload``: the object ``torch.save`` writes. ``state_dict``: its tensors in target
    names (what is checked). ``expected`` / ``optional``: target key -> shape pattern
    (``None`` = any size). ``dropped_keys``: canonical keys the target has no place for.
    ``notes``: lines for the report. ``save``: ``save(payload, path)`` writing atomically;
    None = ``densessl.atomic_io.atomic_torch_save``."""
    payload: object
    state_dict: dict
    expected: dict
    optional: dict = field(default_factory=dict)
    dropped_keys: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    save: object = None


def register_writer(name, required_suffix=None):
    """Decorator: register ``fn(ckpt: CanonicalCheckpoint) -> WriterOutput`` as ``name``;
    ``required_suffix``: what the output file name must end with (None: anything)."""
    def register(fn):
        if name in WRITERS:
            raise ValueError(f'writer {name!r} is already registered ({WRITERS[name]})')
        fn.required_suffix = required_suffix
        WRITERS[name] = fn
        return fn
    return register


from converters.writers import mmseg, torchvision, d2, virb  # noqa: E402,F401  (registers them)
