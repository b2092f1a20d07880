"""Readers: one function per source format, each returning a ``CanonicalCheckpoint``.

``READERS`` maps a format name (``--src-format``) to ``reader(path, log=print)``. A reader
loads the file (``converters.loading.load_checkpoint``), finds the ResNet tensors, renames
them to torchvision names and lists what it dropped; it does not check the key list (the
writer's check in ``converters.convert`` does). Add a format with::

    from converters.readers import register_reader

    @register_reader('moco')
    def read_moco(path, log=print):
        ...
        return CanonicalCheckpoint(state_dict, 'moco', path, dropped_keys=[...])
"""
READERS = {}


def register_reader(name):
    """Decorator: register ``fn(path, log=print) -> CanonicalCheckpoint`` as format ``name``."""
    def register(fn):
        if name in READERS:
            raise ValueError(f'reader {name!r} is already registered ({READERS[name]})')
        READERS[name] = fn
        return fn
    return register


from converters.readers import torchvision, vissl  # noqa: E402,F401  (registers them)
# method-specific readers after the generic ResNet ones (errors list formats in this order)
from converters.readers import vice  # noqa: E402,F401
