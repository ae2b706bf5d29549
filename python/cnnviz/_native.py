"""libcnnviz through ctypes: finding and loading the library, declaring each
function of include/cnnviz.h once, and the structs it takes.

Lookup order: $CNNVIZ_LIBRARY (a path to libcnnviz.so*), then the system's
search (ctypes.util.find_library("cnnviz"), i.e. ldconfig's cache), then
"libcnnviz.so.0" through the dynamic loader ($LD_LIBRARY_PATH).

Pointers to arrays are declared c_void_p and passed as integer addresses
(numpy's `arr.ctypes.data`), which costs the least per call.
"""
import ctypes
import ctypes.util
import os
import threading

from .errors import LibraryError, error_for

# The header this package is written against (include/cnnviz.h): the
# library's major version must equal it and its minor be at least it.
REQUIRED_MAJOR = 0
REQUIRED_MINOR = 3
SONAME = "libcnnviz.so.0"

c_int = ctypes.c_int
c_size_t = ctypes.c_size_t
c_float = ctypes.c_float
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p

LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class OpenOpts(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("weights", c_char_p),
        ("platform", c_char_p),
        ("device", c_char_p),
        ("max_batch", c_int),
        ("gradients", c_int),
        ("strict", c_int),
        ("preprocess", c_char_p),
        ("mean", c_float * 3),
        ("std", c_float * 3),
        ("n_mean", c_int),
        ("n_std", c_int),
        ("size", c_int * 2),
        ("log", LOG_FN),
        ("log_user", c_void_p),
    ]


class LayerInfoC(ctypes.Structure):
    _fields_ = [
        ("name", c_char_p),
        ("op", c_char_p),
        ("c", c_int),
        ("h", c_int),
        ("w", c_int),
        ("flat", c_int),
        ("params", ctypes.c_longlong),
        ("has_weight", c_int),
        ("has_bias", c_int),
    ]


class AttrOpts(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("prob", c_int),
        ("samples", c_int),
        ("sigma", c_float),
        ("baseline", c_char_p),
        ("window", c_int),
        ("stride", c_int),
        ("upsample", c_int),
        ("reduce", c_char_p),
        ("cells", c_int),
        ("keep", c_float),
    ]


class WriteOpts(ctypes.Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("taps", c_void_p),
        ("n_taps", c_int),
        ("no_taps", c_int),
        ("cls", c_char_p),
        ("npy", c_int),
        ("report", c_int),
        ("batch", c_int),
        ("top", c_int),
        ("platform", c_char_p),
        ("device", c_char_p),
        ("weights", c_char_p),
        ("wait_lock", c_int),
        ("log", LOG_FN),
        ("log_user", c_void_p),
        ("score", c_char_p),
        ("curves", c_int),
        ("png_level", c_int),
        ("strict", c_int),
        ("preprocess", c_char_p),
        ("mean", c_float * 3),
        ("std", c_float * 3),
        ("n_mean", c_int),
        ("n_std", c_int),
        ("size", c_int * 2),
        ("road", c_int),
        ("sanity", c_int),
    ]


_PROTOTYPES = {
    "cnnviz_version": (c_char_p, []),
    "cnnviz_last_error": (c_char_p, []),
    "cnnviz_devices": (c_int, [c_void_p, c_size_t]),
    "cnnviz_open_opts_init": (None, [c_void_p]),
    "cnnviz_open": (c_int, [c_char_p, c_void_p, ctypes.POINTER(c_void_p)]),
    "cnnviz_close": (None, [c_void_p]),
    "cnnviz_num_layers": (c_int, [c_void_p]),
    "cnnviz_layer": (c_int, [c_void_p, c_int, ctypes.POINTER(LayerInfoC)]),
    "cnnviz_find_layer": (c_int, [c_void_p, c_char_p]),
    "cnnviz_input_shape": (c_int, [c_void_p, ctypes.POINTER(c_int), ctypes.POINTER(c_int), ctypes.POINTER(c_int)]),
    "cnnviz_num_classes": (c_int, [c_void_p]),
    "cnnviz_class_label": (c_char_p, [c_void_p, c_int]),
    "cnnviz_model_name": (c_char_p, [c_void_p]),
    "cnnviz_device_name": (c_char_p, [c_void_p]),
    "cnnviz_max_batch": (c_int, [c_void_p]),
    "cnnviz_outputs_probabilities": (c_int, [c_void_p]),
    "cnnviz_run_tensor": (c_int, [c_void_p, c_void_p, c_int]),
    "cnnviz_run_images": (c_int, [c_void_p, c_void_p, c_void_p, c_void_p, c_int, c_int]),
    "cnnviz_run_files": (c_int, [c_void_p, c_void_p, c_int]),
    "cnnviz_batch_size": (c_int, [c_void_p]),
    "cnnviz_output": (c_int, [c_void_p, c_void_p, c_size_t]),
    "cnnviz_activations": (c_int, [c_void_p, c_char_p, c_void_p, c_size_t, c_void_p]),
    "cnnviz_parameter": (c_int, [c_void_p, c_char_p, c_char_p, c_void_p, c_size_t, c_void_p, c_void_p]),
    "cnnviz_attr_opts_init": (None, [c_void_p]),
    "cnnviz_attribute": (c_int, [c_void_p, c_char_p, c_char_p, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p]),
    "cnnviz_render": (c_int, [c_void_p, c_void_p, c_int, c_int, c_char_p, c_char_p, c_int, c_float, c_void_p]),
    "cnnviz_write_opts_init": (None, [c_void_p]),
    "cnnviz_write_run": (c_int, [c_char_p, c_void_p, c_int, c_char_p, c_void_p]),
}

_HOW_TO = (
    "build and install the C library first:\n"
    "    cmake -S . -B build && cmake --build build -j && cmake --install build\n"
    "(then `ldconfig` if it went to a system folder), or point CNNVIZ_LIBRARY at the built file:\n"
    "    export CNNVIZ_LIBRARY=$PWD/build/libcnnviz.so.0")


class Native:
    """The loaded library: `lib` (the ctypes.CDLL with every function
    declared), `path` (what was loaded), `version` (its version string) and
    each struct's defaults as cnnviz_*_opts_init sets them."""

    def __init__(self, lib, path):
        self.lib = lib
        self.path = path
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise LibraryError("%s has no function %s: it is not the libcnnviz this package needs (%d.%d); %s"
                                   % (path, name, REQUIRED_MAJOR, REQUIRED_MINOR, _HOW_TO)) from None
            fn.restype = restype
            fn.argtypes = argtypes
        self.version = lib.cnnviz_version().decode("ascii", "replace")
        try:
            major, minor = (int(p) for p in self.version.split(".")[:2])
        except ValueError:
            raise LibraryError("%s reports version %r, not MAJOR.MINOR.PATCH" % (path, self.version)) from None
        if major != REQUIRED_MAJOR or minor < REQUIRED_MINOR:
            raise LibraryError("%s is libcnnviz %s; this package needs %d.%d or a later %d.x; %s"
                               % (path, self.version, REQUIRED_MAJOR, REQUIRED_MINOR, REQUIRED_MAJOR, _HOW_TO))
        self.open_defaults = self._defaults(OpenOpts, lib.cnnviz_open_opts_init)
        self.attr_defaults = self._defaults(AttrOpts, lib.cnnviz_attr_opts_init)
        self.write_defaults = self._defaults(WriteOpts, lib.cnnviz_write_opts_init)

    @staticmethod
    def _defaults(struct, init):
        """The struct as init fills it, as bytes, with struct_size the size
        both sides know.  init runs on a larger zeroed buffer: a later
        library whose struct grew writes its new fields there, not past
        ours; it then reads only the struct_size bytes we declare."""
        size = ctypes.sizeof(struct)
        buf = ctypes.create_string_buffer(max(4096, 8 * size))
        init(ctypes.addressof(buf))
        theirs = c_size_t.from_buffer(buf).value
        if theirs == 0 or theirs > len(buf):
            raise LibraryError("%s: the library set struct_size = %d, not a size this package knows"
                               % (struct.__name__, theirs))
        out = struct.from_buffer_copy(buf.raw[:size])
        out.struct_size = min(size, theirs)  # an older library reads only the fields it has
        return bytes(memoryview(out).cast("B"))

    def check(self, rc):
        """rc when >= 0, else raises the exception for it with the message of
        this thread's last error."""
        if rc >= 0:
            return rc
        msg = self.lib.cnnviz_last_error()
        raise error_for(rc, msg.decode("utf-8", "replace") if msg else "")


_loaded = None
_load_lock = threading.Lock()


def _candidates():
    env = os.environ.get("CNNVIZ_LIBRARY")
    if env:
        return [("CNNVIZ_LIBRARY", env)]
    found = ctypes.util.find_library("cnnviz")
    out = []
    if found:
        out.append(("the system's library search", found))
    out.append(("the dynamic loader", SONAME))
    return out


def native():
    """The loaded library (loads it on first use); raises LibraryError with
    what was tried and how to build it."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _load_lock:
        if _loaded is None:
            tried = []
            for how, name in _candidates():
                if how == "CNNVIZ_LIBRARY" and not os.path.exists(name):
                    raise LibraryError("CNNVIZ_LIBRARY=%s: no such file; %s" % (name, _HOW_TO))
                try:
                    lib = ctypes.CDLL(name)
                except OSError as e:
                    tried.append("%s (%s): %s" % (name, how, e))
                    if how == "CNNVIZ_LIBRARY":
                        raise LibraryError("CNNVIZ_LIBRARY=%s cannot be loaded: %s" % (name, e)) from None
                    continue
                _loaded = Native(lib, name)
                break
            else:
                raise LibraryError("libcnnviz not found (tried %s); %s" % ("; ".join(tried), _HOW_TO))
    return _loaded
