"""Exceptions of the cnnviz package.

Every failure the library reports carries its message (cnnviz_last_error)
and its status code:

    Error          RuntimeError   a run-time failure: device, memory, I/O
    UsageError     Error, ValueError   a bad argument (unknown layer or method ...)
    InputError     Error, ValueError   a bad file: pipeline, model, weights, image
    LibraryError   ImportError    libcnnviz could not be found or is too old

So `except ValueError` catches bad arguments whether Python or the library
found them, and `except cnnviz.Error` catches everything the library says.
"""

STATUS_NAMES = {
    0: "CNNVIZ_OK",
    -1: "CNNVIZ_ERR_USAGE",
    -2: "CNNVIZ_ERR_INPUT",
    -3: "CNNVIZ_ERR_IO",
    -4: "CNNVIZ_ERR_DEVICE",
    -5: "CNNVIZ_ERR_NOMEM",
    -6: "CNNVIZ_ERR_NODEV",
    -7: "CNNVIZ_ERR_INTERRUPTED",
    -8: "CNNVIZ_ERR_STATE",
}
ERR_USAGE = -1
ERR_INPUT = -2


class Error(RuntimeError):
    """A failure reported by libcnnviz.

    Attributes: status (int, a negative CNNVIZ_ERR_* code of include/cnnviz.h),
    status_name (its name, e.g. "CNNVIZ_ERR_DEVICE"), message (the library's
    one-line description: which file, layer or OpenCL call failed)."""

    def __init__(self, message, status):
        super().__init__(message)
        self.message = message
        self.status = status

    @property
    def status_name(self):
        return STATUS_NAMES.get(self.status, "status %d" % self.status)


class UsageError(Error, ValueError):
    """A bad argument the library refused (CNNVIZ_ERR_USAGE): an unknown layer,
    method or colormap, a map of the wrong size, a model opened without
    gradients asked for a gradient map."""


class InputError(Error, ValueError):
    """A bad or missing file (CNNVIZ_ERR_INPUT): pipeline, ONNX model,
    weights or image."""


class LibraryError(ImportError):
    """libcnnviz.so could not be loaded, or its version does not match this
    package."""


def error_for(status, message):
    """The exception for a failed call's status and message."""
    if not message:
        message = "libcnnviz failed with %s and no message" % STATUS_NAMES.get(status, "status %d" % status)
    if status == ERR_USAGE:
        return UsageError(message, status)
    if status == ERR_INPUT:
        return InputError(message, status)
    return Error(message, status)
