"""convert(): read -> check against the architecture's full key list -> write atomically."""
import os.path as osp

from densessl.atomic_io import atomic_torch_save
from converters import canonical_resnet
from converters.checkpoint_file import ConversionError
from converters.readers import READERS
from converters.writers import WRITERS


def _summary(keys, limit=6):
    return ', '.join(keys[:limit]) + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def convert(src, dst, src_format, dst_format, arch='auto', allow_missing=False):
    """Convert ``src`` (``src_format``) to ``dst`` (``dst_format``); returns the report dict.

    Raises :class:`ConversionError` and writes nothing when a key of the architecture is
    missing, a trunk key is unexpected or a shape does not match, unless ``allow_missing``.
    """
    if src_format not in READERS:
        raise ConversionError(f'unknown --src-format {src_format!r}; one of {sorted(READERS)}')
    if dst_format not in WRITERS:
        raise ConversionError(f'unknown --dst-format {dst_format!r}; one of {sorted(WRITERS)}')
    state, dropped = READERS[src_format](src)
    detected = canonical_resnet.detect_arch(state)
    if arch == 'auto':
        if detected is None:
            raise ConversionError(f'{src}: cannot tell which ResNet this is from its keys; pass '
                                  f'--arch (one of {canonical_resnet.ARCHS})')
        arch = detected
    missing, unexpected, mismatched = canonical_resnet.verify(state, arch)
    report = dict(source=osp.abspath(src), source_format=src_format, destination=osp.abspath(dst),
                  destination_format=dst_format, arch=arch, detected_arch=detected,
                  matched=len(canonical_resnet.expected_shapes(arch)) - len(missing) - len(mismatched),
                  expected=len(canonical_resnet.expected_shapes(arch)),
                  has_fc='fc.weight' in state, dropped=dropped, missing=missing,
                  unexpected=unexpected, mismatched=mismatched, written=False)
    problems = missing or unexpected or mismatched
    if problems and not allow_missing:
        raise ConversionError(
            f'REFUSED: {src} does not convert completely to {arch}: missing '
            f'[{_summary(missing)}], unexpected [{_summary(unexpected)}], shape mismatches '
            f'[{_summary(mismatched)}]. Nothing was written. Check --arch / --src-format, or '
            f'pass --allow-missing to write the partial result anyway.')
    left_out = set(unexpected) | {m.split(':')[0] for m in mismatched}
    keep = {k: v for k, v in state.items() if k not in left_out}
    meta = dict(converter='densessl', arch=arch, source_format=src_format,
                source_path=osp.abspath(src), dropped_keys=dropped, partial=bool(problems))
    atomic_torch_save(WRITERS[dst_format](keep, meta), dst)
    report['written'] = True
    report['partial'] = bool(problems)
    return report


def format_report(report):
    lines = [f"{report['source_format']} -> {report['destination_format']}: {report['source']}",
             f"  architecture: {report['arch']} (detected: {report['detected_arch']})",
             f"  matched {report['matched']}/{report['expected']} backbone tensors; "
             f"fc in source: {report['has_fc']}",
             f"  dropped (not backbone): {_summary(report['dropped']) or 'none'}"]
    for name in ('missing', 'unexpected', 'mismatched'):
        if report[name]:
            lines.append(f'  {name}: {_summary(report[name])}')
    if report['written']:
        partial = ' (PARTIAL: --allow-missing)' if report.get('partial') else ''
        lines.append(f"  wrote {report['destination']}{partial}")
    return '\n'.join(lines)
