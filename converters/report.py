"""The conversion report: a JSON-able dict, printed as a few lines.

Keys: ``status`` ('written' | 'written_with_warnings' | 'refused'), ``source_format``,
``format_detection`` (``--src-format auto``: 'format: the keys that decided'; else None),
``source_path``, ``dst_format``, ``dst_path``, ``arch``, ``arch_from`` ('given' | 'detected'
| 'closest match'), ``structure`` (e.g. 'basic blocks 2-2-2-2'), ``num_source_tensors``,
``num_expected`` (required target keys), ``num_matched``, ``fc`` ('kept' | 'dropped' |
'absent'), ``dropped_keys``, ``missing_keys``, ``unexpected_keys``, ``shape_mismatches``
([{'key', 'shape', 'expected'}]), ``notes``, ``warnings``, ``written``.

Printed: the source and target, the detected format (auto), the arch, one line of counts
(read / matched / required), then the dropped (more than ten: by group), missing,
unexpected and shape-mismatched keys, each with its count, the notes (which encoder was
taken, a trusted ``weights_only=False`` load, ...), warnings and the status.
"""
from converters.canonical_resnet import is_fc
from converters.readers.common import group_keys

LIST_LIMIT = 10


def build_report(ckpt, dst_path, dst_format, arch_from, structure, output, diff,
                 format_detection=None):
    source_fc = any(is_fc(k) for k in ckpt.state_dict)
    written_fc = any(is_fc(k) for k in output.state_dict)
    return {
        'status': None, 'source_format': ckpt.source_format,
        'format_detection': format_detection, 'source_path': ckpt.source_path,
        'dst_format': dst_format, 'dst_path': dst_path,
        'arch': ckpt.arch, 'arch_from': arch_from, 'structure': structure,
        'num_source_tensors': len(ckpt.state_dict) + len(ckpt.extra_keys()),
        'num_expected': len(output.expected),
        'num_matched': len(diff['matched']),
        'fc': 'kept' if written_fc else ('dropped' if source_fc else 'absent'),
        'dropped_keys': list(ckpt.dropped_keys) + list(output.dropped_keys),
        'missing_keys': diff['missing'], 'unexpected_keys': diff['unexpected'],
        'shape_mismatches': diff['mismatched'],
        'notes': list(ckpt.notes) + list(output.notes), 'warnings': [], 'written': False,
    }


def problems(report):
    return bool(report['missing_keys'] or report['unexpected_keys']
                or report['shape_mismatches'])


def summarise(keys, limit=LIST_LIMIT):
    keys = list(keys)
    text = ', '.join(keys[:limit])
    return text + (f' ... and {len(keys) - limit} more' if len(keys) > limit else '')


def _mismatch_lines(report, limit=LIST_LIMIT):
    return [f"{m['key']}: source {m['shape']} vs expected {m['expected']}"
            for m in report['shape_mismatches'][:limit]]


def problem_summary(report):
    """One sentence per kind of problem, naming the keys."""
    parts = []
    if report['missing_keys']:
        parts.append(f"{len(report['missing_keys'])} missing keys: "
                     f"{summarise(report['missing_keys'])}")
    if report['unexpected_keys']:
        parts.append(f"{len(report['unexpected_keys'])} unexpected keys: "
                     f"{summarise(report['unexpected_keys'])}")
    if report['shape_mismatches']:
        more = len(report['shape_mismatches']) - LIST_LIMIT
        parts.append(f"{len(report['shape_mismatches'])} shape mismatches: "
                     + '; '.join(_mismatch_lines(report))
                     + (f' ... and {more} more' if more > 0 else ''))
    return '; '.join(parts)


def refusal_message(report):
    if not report['num_matched']:
        advice = 'check that --src-format and --arch match the file'
    else:
        advice = ('if the architecture is wrong pass --arch (resnet18/34/50/101/152); check '
                  'that --src-format matches the file; to write the matching tensors anyway '
                  'pass --allow-missing')
    return (f"refused to convert {report['source_path']} ({report['source_format']}) to "
            f"{report['dst_format']} as {report['arch']} ({report['arch_from']}; keys look "
            f"like {report['structure']}): {problem_summary(report)}. Nothing was written to "
            f"{report['dst_path']}; {advice}.")


def format_report(report):
    """The report as printable lines."""
    lines = [f"convert: {report['source_format']} {report['source_path']} -> "
             f"{report['dst_format']} {report['dst_path']}"]
    if report.get('format_detection'):
        lines.append(f"  format: auto-detected {report['format_detection']}")
    lines += [f"  arch: {report['arch']} ({report['arch_from']}; keys look like "
              f"{report['structure']})",
              f"  tensors: {report['num_source_tensors']} read, {report['num_matched']} matched "
              f"({report['num_expected']} required by the target); fc: {report['fc']}"]
    dropped = report['dropped_keys']
    if len(dropped) > LIST_LIMIT:  # by group, e.g. module.encoder_q.<resnet> (318)
        shown = f'{group_keys(dropped)} (every key in --report-json)'
    else:
        shown = summarise(dropped) if dropped else '-'
    lines.append(f"  dropped ({len(dropped)}): {shown}")
    for name, key in (('missing', 'missing_keys'), ('unexpected', 'unexpected_keys')):
        keys = report[key]
        lines.append(f'  {name} ({len(keys)}): {summarise(keys) if keys else "-"}')
    mismatches = _mismatch_lines(report)
    lines.append(f"  shape mismatches ({len(report['shape_mismatches'])}): "
                 f"{'; '.join(mismatches) if mismatches else '-'}")
    lines += [f'  note: {n}' for n in report['notes']]
    lines += [f'  WARNING: {w}' for w in report['warnings']]
    lines.append(f"  status: {report['status']}")
    return lines
