"""The two errors a conversion can end with.

``ConversionError``: the input cannot be used at all (file missing or corrupt, unknown
format, a VISSL checkpoint without the expected nesting, no ResNet found). The message names
the file or key and says what to do.

``ConversionRefused``: the input was read, but the result does not match the target's full
key list (missing, unexpected or shape-mismatched keys) and ``allow_missing`` was not given.
Nothing was written. ``.report`` holds the conversion report (a dict, see ``report.py``).
"""


class ConversionError(Exception):
    """The input checkpoint cannot be converted; the message says why and what to do."""


class ConversionRefused(ConversionError):
    """The converted tensors do not match the target; nothing was written."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report
