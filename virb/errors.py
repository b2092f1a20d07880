"""``VirbError``: bad input the benchmark cannot use (a config key, a weight file, a data
root); the message names the file or key and says what to do. The CLI prints it and exits 2."""


class VirbError(Exception):
    """Unusable input; the message names the file or key."""
