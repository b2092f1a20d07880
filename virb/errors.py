"""``VirbError``: bad input the benchmark cannot use (a config key, a weight file, a data
root); the message names the file or key and says what to do. The CLI prints it and exits 2."""


class VirbError(Exception):
    """Unusable input; the message names the file or key."""


def reject_unknown_keys(mapping, allowed, where, what):
    """Raise ``VirbError('<where>.<key>: unknown key; <what> takes <allowed>')`` for the
    first key of ``mapping`` not in ``allowed``."""
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise VirbError(f'{where}.{unknown[0]}: unknown key; {what} takes {", ".join(allowed)}')
