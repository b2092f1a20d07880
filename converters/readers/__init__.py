"""Readers: one function per source format, each returning a ``CanonicalCheckpoint``.

``READERS`` maps a format name (``--src-format``) to ``reader(path, log=print, **options)``.
A reader loads the file (``converters.loading.load_checkpoint``), finds the ResNet tensors,
renames them to torchvision names and lists what it dropped; it does not check the key list
(the writer's check in ``converters.convert`` does). Formats:

==============  ==============================================================  ==========
format          what it reads                                                   module
==============  ==============================================================  ==========
torchvision     a torchvision ResNet state dict (also under state_dict / model)  torchvision
vissl           a VISSL checkpoint of a ResNet trunk (``_feature_blocks.*``)     vissl
moco            MoCo v1/v2 (``module.encoder_q.*``) / v3 (``base_encoder.*``)    moco
swav            SwAV's files (``module.<resnet>`` + projection_head/prototypes)  swav
slotcon         SlotCon: teacher (default) or student encoder, original          slotcon
                checkpoints and densessl's VISSL SlotCon checkpoints
vice            ViCE's VISSL deeplabv3plus trunk (ResNet + DeepLabV3+ head)      vice
virb            the original ViRB's encoder files (``model.<torchvision name>``) virb
simsiam         SimSiam's encoder (``module.encoder.*``; its projector              simsiam
                ``encoder.fc.*`` and ``predictor.*`` dropped)
==============  ==============================================================  ==========

``--src-format auto`` is not a reader: ``converters.readers.detect.detect_format`` names
the reader from the keys. Add a format with::

    from converters.readers import register_reader

    @register_reader('myformat', trusted_pickle=False, options=())
    def read_myformat(path, log=print):
        ...
        return CanonicalCheckpoint(state_dict, 'myformat', path, dropped_keys=[...])

``trusted_pickle``: the format's files pickle Python objects, so ``convert`` (and the
reader's own ``load_checkpoint``) may load them with ``weights_only=False``. ``options``:
the keyword options the reader takes (``'use_student'`` for slotcon); ``convert`` refuses an
option the chosen reader does not take.
"""
READERS = {}


def register_reader(name, trusted_pickle=False, options=()):
    """Decorator: register ``fn(path, log=print, **options) -> CanonicalCheckpoint`` as
    format ``name`` (see the module docstring for ``trusted_pickle`` / ``options``)."""
    def register(fn):
        if name in READERS:
            raise ValueError(f'reader {name!r} is already registered ({READERS[name]})')
        fn.trusted_pickle = trusted_pickle
        fn.reader_options = tuple(options)
        READERS[name] = fn
        return fn
    return register


def reader_trusts_pickle(reader):
    return getattr(reader, 'trusted_pickle', False)


def reader_options(reader):
    return getattr(reader, 'reader_options', ())


from converters.readers import torchvision, vissl  # noqa: E402,F401  (registers them)
# method-specific readers after the generic ResNet ones (errors list formats in this order)
from converters.readers import moco, swav, slotcon, vice, virb, simsiam  # noqa: E402,F401
