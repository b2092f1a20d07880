"""``convert``: read any format -> canonical ResNet state dict -> write any format.

One function for the CLI (``tools/convert_checkpoint.py``) and for Python callers:

1. checks the output name (a writer's ``required_suffix``, e.g. ``.pkl`` for d2);
2. loads the file once (``converters.loading.load``; ``weights_only=False`` only for
   readers registered with ``trusted_pickle`` and for ``auto``, with a note) and tells its
   format from the keys (``converters.readers.detect.detect_format``);
3. ``src_format='auto'``: reads it with the detected reader, or fails naming what the keys
   look like; a given ``src_format`` that the keys do not fit is one error naming the file,
   the keys and the format they fit;
4. reads with ``READERS[src_format]`` (on the object already loaded), settles the arch
   (given, or detected from the keys), builds the target with ``WRITERS[dst_format]``,
   checks it against the target's full key list, prints and returns the report, and then
   either refuses (``ConversionRefused``, nothing written) or writes atomically
   (``densessl.atomic_io``; the writer's own ``save`` where it has one).
"""
import os.path as osp

from densessl.atomic_io import atomic_torch_save, atomic_write_json

from converters.canonical_resnet import ARCHS, compare, describe_structure, detect_arch
from converters.errors import ConversionError, ConversionRefused
from converters.loading import load, preloaded
from converters.readers import READERS, reader_options, reader_trusts_pickle
from converters.readers.common import show_keys
from converters.readers.detect import detect_format
from converters.report import (build_report, format_report, problem_summary, problems,
                               refusal_message)
from converters.writers import WRITERS

AUTO = 'auto'


def _lookup(registry, name, option, extra=()):
    if name not in registry:
        # registration order: the generic ResNet formats first, then method-specific ones
        known = ', '.join([*extra, *registry])
        raise ConversionError(f'unknown {option} {name!r}; one of {known}')
    return registry[name]


def _check_output_name(dst, dst_format, writer):
    suffix = getattr(writer, 'required_suffix', None)
    if suffix and not str(dst).endswith(suffix):
        raise ConversionError(
            f'output {dst}: --dst-format {dst_format} files must be named *{suffix} (the '
            f'loader tells the format by the name), e.g. {osp.splitext(str(dst))[0]}{suffix}')


def _check_options(reader, fmt, options, detected):
    for name in options:
        if name not in reader_options(reader):
            how = (f'the file, auto-detected as {fmt}, has' if detected else
                   f'--src-format {fmt} reads')
            takes = [f for f, r in READERS.items() if name in reader_options(r)]
            raise ConversionError(
                f'--{name.replace("_", "-")} applies to --src-format {", ".join(takes)} only '
                f'(checkpoints with a student and a teacher encoder); {how} a single encoder')


def _misfit(fmt, detection):
    return detection is not None and detection.candidates and fmt not in detection.candidates


def _wrong_format(src, fmt, detection, reason=None):
    message = (f'{src}: --src-format {fmt} does not match the keys: {detection.layout}; they '
               f'fit --src-format {detection.format} ({detection.evidence}); pass that, or '
               f'--src-format auto')
    return ConversionError(message + (f'. The {fmt} reader says: {reason}' if reason else ''))


def _read(src, src_format, options, log):
    """Returns (CanonicalCheckpoint, Detection or None, detected: bool)."""
    reader = None if src_format == AUTO else _lookup(READERS, src_format, '--src-format',
                                                     (AUTO,))
    try:
        loaded = load(src, src_format, trusted_pickle=reader is None
                      or reader_trusts_pickle(reader), log=log)
    except ConversionError:
        if reader is None:
            raise
        _check_options(reader, src_format, options, False)
        return reader(src, log=log, **options), None, False  # the reader says why (or reads it)
    detection = detect_format(loaded.obj)
    fmt = src_format
    if reader is None:
        if detection.format is None:
            raise ConversionError(
                f'{src}: --src-format auto cannot tell the format ({detection.evidence}); '
                f'the keys look like {detection.layout}. Pass --src-format, one of '
                f'{", ".join(READERS)}')
        fmt = detection.format
        reader = READERS[fmt]
    _check_options(reader, fmt, options, src_format == AUTO)
    with preloaded(src, loaded):
        try:
            ckpt = reader(src, log=log, **options)
        except ConversionError as e:
            if _misfit(fmt, detection):
                raise _wrong_format(src, fmt, detection, reason=e) from e
            raise
    if _misfit(fmt, detection):
        raise _wrong_format(src, fmt, detection)
    if detection.format not in (None, fmt):
        ckpt.notes.append(f'the keys fit --src-format {detection.format} best '
                          f'({detection.evidence}); read as {fmt}, as asked')
    return ckpt, detection, src_format == AUTO


def _settle_arch(ckpt, arch):
    """Returns (arch, how it was chosen); raises when nothing looks like a ResNet."""
    structure = describe_structure(ckpt.state_dict)
    detected, exact = detect_arch(ckpt.state_dict)
    if arch != 'auto':
        if arch not in ARCHS:
            raise ConversionError(f'unknown --arch {arch!r}; one of auto, {", ".join(ARCHS)}')
        if exact and detected != arch:
            ckpt.notes.append(f'the keys look like {detected} ({structure}), not the given {arch}')
        return arch, 'given', structure
    if detected is None:
        raise ConversionError(
            f'{ckpt.source_path}: no tensor matches a torchvision ResNet ({structure}; keys read '
            f'as {ckpt.source_format}: {show_keys(ckpt.state_dict)}). Check --src-format, or '
            f'pass --arch if the architecture is a ResNet')
    return detected, 'detected' if exact else 'closest match', structure


def convert(src, dst, src_format, dst_format, arch='auto', allow_missing=False,
            report_json=None, log=print, use_student=False):
    """Convert the checkpoint file ``src`` (format ``src_format``) to ``dst`` (``dst_format``).

    ``src_format``: a name of ``READERS`` or ``'auto'`` (detected from the keys, said in the
    report). ``arch``: 'auto' or one of ``canonical_resnet.ARCHS``. ``allow_missing``: write
    even when keys are missing / unexpected / shape-mismatched (with a warning).
    ``report_json``: also write the report there (refused or not). ``log``: where report
    lines go. ``use_student``: for SlotCon, the student encoder instead of the teacher.
    Returns the report dict; raises ``ConversionError`` for unusable input and
    ``ConversionRefused`` (with ``.report``) when the result does not match the target.
    """
    writer = _lookup(WRITERS, dst_format, '--dst-format')
    if src_format != AUTO:
        _lookup(READERS, src_format, '--src-format', (AUTO,))
    _check_output_name(dst, dst_format, writer)
    options = {'use_student': True} if use_student else {}
    ckpt, detection, detected = _read(src, src_format, options, log)
    ckpt.arch, arch_from, structure = _settle_arch(ckpt, arch)
    output = writer(ckpt)
    diff = compare(output.state_dict, output.expected, output.optional)
    report = build_report(ckpt, dst, dst_format, arch_from, structure, output, diff,
                          format_detection=(f'{ckpt.source_format}: {detection.evidence}'
                                            if detected else None))
    refuse = problems(report) and not allow_missing
    if not diff['matched']:
        refuse = True
        report['warnings'].append('no tensor matches the target: refused even with --allow-missing')
    if refuse:
        report['status'] = 'refused'
    else:
        if problems(report):
            report['warnings'].append(f'written with --allow-missing although it does not '
                                      f'match {ckpt.arch}: {problem_summary(report)}; a strict '
                                      f'load of {dst} will fail')
            report['status'] = 'written_with_warnings'
        else:
            report['status'] = 'written'
        (output.save or atomic_torch_save)(output.payload, dst)
        report['written'] = True
    for line in format_report(report):
        log(line)
    if report_json:
        atomic_write_json(report, report_json)
    if refuse:
        raise ConversionRefused(refusal_message(report), report)
    return report
