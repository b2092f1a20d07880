"""``convert``: read any format -> canonical ResNet state dict -> write any format.

One function for the CLI (``tools/convert_checkpoint.py``) and for Python callers; it reads
with ``READERS[src_format]``, settles the arch (given, or detected from the keys), builds the
target with ``WRITERS[dst_format]``, checks it against the target's full key list, prints
and returns the report, and then either refuses (``ConversionRefused``, nothing written) or
writes atomically (``densessl.atomic_io.atomic_torch_save``).
"""
from densessl.atomic_io import atomic_torch_save, atomic_write_json

from converters.canonical_resnet import ARCHS, compare, describe_structure, detect_arch
from converters.errors import ConversionError, ConversionRefused
from converters.readers import READERS
from converters.readers.common import show_keys
from converters.report import (build_report, format_report, problem_summary, problems,
                               refusal_message)
from converters.writers import WRITERS


def _lookup(registry, name, option):
    if name not in registry:
        # registration order: the generic ResNet formats first, then method-specific ones
        raise ConversionError(f'unknown {option} {name!r}; one of {", ".join(registry)}')
    return registry[name]


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
            report_json=None, log=print):
    """Convert the checkpoint file ``src`` (format ``src_format``) to ``dst`` (``dst_format``).

    ``arch``: 'auto' or one of ``canonical_resnet.ARCHS``. ``allow_missing``: write even when
    keys are missing / unexpected / shape-mismatched (with a warning). ``report_json``: also
    write the report there (refused or not). ``log``: where report lines go.
    Returns the report dict; raises ``ConversionError`` for unusable input and
    ``ConversionRefused`` (with ``.report``) when the result does not match the target.
    """
    reader = _lookup(READERS, src_format, '--src-format')
    writer = _lookup(WRITERS, dst_format, '--dst-format')
    ckpt = reader(src, log=log)
    ckpt.arch, arch_from, structure = _settle_arch(ckpt, arch)
    output = writer(ckpt)
    diff = compare(output.state_dict, output.expected, output.optional)
    report = build_report(ckpt, dst, dst_format, arch_from, structure, output, diff)
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
        atomic_torch_save(output.payload, dst)
        report['written'] = True
    for line in format_report(report):
        log(line)
    if report_json:
        atomic_write_json(report, report_json)
    if refuse:
        raise ConversionRefused(refusal_message(report), report)
    return report
