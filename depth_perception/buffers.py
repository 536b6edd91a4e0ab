"""Output buffers reused frame after frame, shaped for messages that keep them without a copy.

A ROS message's ``data`` field is an ``array.array('B')``. rclpy (Jazzy) keeps an assigned
``array.array`` as it is when the message was created with ``check_fields=True``; any other value
(bytes, an ndarray, a memoryview) is copied element by element or through a fresh buffer. A fresh
5-6 MB buffer per frame costs more than filling it: the kernel page-faults every new page in
(thousands of minor faults per frame). So the core writes each output straight into a
:class:`ReusableBuffer`'s ``array.array`` through a numpy view, and the node hands that same
``array.array`` to the message.

Overwriting is safe because ``publish()`` converts and serializes the message inside the call
(rclpy has no loaned messages and no intra-process path): once it returns, the bytes are DDS's
own. Nothing else may keep a message built on a reused buffer past the next frame.

Imports no rclpy.
"""

from __future__ import annotations

import array

import numpy as np


class ReusableBuffer:
    """One byte buffer, reallocated only when the size it must hold changes.

    ``view(shape, dtype)`` returns a numpy array over the buffer (writes go straight into it);
    ``payload`` is the ``array.array('B')`` a message can take as its ``data``. The payload is
    always exactly as long as the last view asked for, so it can be published as it is.
    """

    def __init__(self) -> None:
        self._payload = array.array("B")
        self.allocations = 0

    @property
    def payload(self) -> array.array:
        """The buffer as the ``array.array('B')`` a message's ``data`` takes without a copy."""
        return self._payload

    @property
    def nbytes(self) -> int:
        return len(self._payload)

    def ensure(self, nbytes: int) -> bool:
        """Make the buffer exactly ``nbytes`` long; True when that needed a new allocation.

        A new buffer is zero-filled (every page touched once, here, not in the frame loop); the
        old one stays valid for as long as something still holds a view of it.
        """
        if nbytes < 0:
            raise ValueError(f"a buffer cannot hold {nbytes} bytes")
        if nbytes == len(self._payload):
            return False
        # An array.array with exported views cannot be resized: always replace it.
        self._payload = array.array("B", bytes(1)) * nbytes if nbytes else array.array("B")
        self.allocations += 1
        return True

    def view(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` over the whole buffer."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        self.ensure(count * dtype.itemsize)
        if count == 0:
            return np.empty(shape, dtype)
        return np.frombuffer(self._payload, dtype=dtype, count=count).reshape(shape)


class BufferSet:
    """Named :class:`ReusableBuffer`\\ s: the outputs of one camera (``depth``, ``labels``...)."""

    def __init__(self) -> None:
        self._buffers: dict[str, ReusableBuffer] = {}

    def buffer(self, name: str) -> ReusableBuffer:
        """The buffer called ``name`` (created empty on first use)."""
        found = self._buffers.get(name)
        if found is None:
            found = self._buffers[name] = ReusableBuffer()
        return found

    def view(self, name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """``buffer(name).view(shape, dtype)``."""
        return self.buffer(name).view(shape, dtype)

    @property
    def allocations(self) -> int:
        """How many times any buffer of the set was (re)allocated: constant in steady state."""
        return sum(b.allocations for b in self._buffers.values())


def backing_payload(values: np.ndarray) -> array.array | None:
    """The ``array.array('B')`` that ``values`` covers exactly, or None.

    True only for a C-contiguous view that starts at the array.array's first byte and spans all
    of it (what :meth:`ReusableBuffer.view` returns): then the bytes of ``values`` ARE the
    payload, and a message may take the payload instead of a copy.
    """
    if not isinstance(values, np.ndarray) or not values.flags.c_contiguous:
        return None
    owner: object = values
    while isinstance(owner, np.ndarray):
        owner = owner.base
    if isinstance(owner, memoryview):
        owner = owner.obj
    if not isinstance(owner, array.array) or owner.typecode != "B":
        return None
    address, length = owner.buffer_info()
    if length != values.nbytes or address != values.__array_interface__["data"][0]:
        return None
    return owner
