"""Result arrays whose memory is used again once the caller drops them.

A fresh multi-megabyte numpy array costs a page fault per 4 KiB page the
first time the library writes it -- for a 12.8 MB activation tensor more
than the copy itself.  Large results therefore live in storage kept by a
per-model pool: the array handed out is a view of that storage, and when
the last array that uses it is gone, the storage goes back to the pool and
the next result of that size is written into memory that is already
mapped.

The view is made through a memoryview, so every slice or reshape of a
result keeps that view (not the storage) alive: the storage returns only
when nothing derived from the result remains.
"""
import weakref

import numpy as np

POOL_MIN_BYTES = 1 << 20       # smaller arrays: plain np.empty (malloc reuses them well)
POOL_MAX_BYTES = 256 << 20     # storage kept idle per pool, at most
POOL_PER_SIZE = 2              # idle storages kept per size


class Pool:
    """Storage for float32 results, by size.  Thread-safe without a lock:
    returns happen in finalizers, which may run inside any call (a lock
    there could be taken twice by one thread); list append / pop are atomic
    under the interpreter lock."""

    def __init__(self):
        self._idle = {}
        self._idle_bytes = 0
        self.closed = False

    def array(self, shape):
        """An uninitialised float32 array of `shape`."""
        count = 1
        for s in shape:
            count *= s
        nbytes = count * 4
        if nbytes < POOL_MIN_BYTES or self.closed:
            return np.empty(shape, np.float32)
        storage = None
        idle = self._idle.get(nbytes)
        if idle:
            try:
                storage = idle.pop()
                self._idle_bytes -= nbytes
            except IndexError:  # another thread took it
                storage = None
        if storage is None:
            storage = np.empty(nbytes, np.uint8)
        view = np.frombuffer(memoryview(storage), np.float32)
        f = weakref.finalize(view, self._give_back, nbytes, storage)
        f.atexit = False
        return view.reshape(shape)

    def _give_back(self, nbytes, storage):
        if self.closed or self._idle_bytes + nbytes > POOL_MAX_BYTES:
            return
        idle = self._idle.setdefault(nbytes, [])
        if len(idle) < POOL_PER_SIZE:
            idle.append(storage)
            self._idle_bytes += nbytes

    def clear(self):
        """Drops the idle storage and keeps none from now on."""
        self.closed = True
        self._idle = {}
        self._idle_bytes = 0
