"""ReusableBuffer / BufferSet / backing_payload: views over one array.array, reused."""

from __future__ import annotations

import array

import numpy as np
import pytest

from depth_perception.buffers import BufferSet, ReusableBuffer, backing_payload


def test_view_writes_into_the_payload_and_is_reused() -> None:
    buffer = ReusableBuffer()
    view = buffer.view((3, 4), np.float32)
    assert view.flags.writeable and view.flags.c_contiguous
    view[:] = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert isinstance(buffer.payload, array.array) and buffer.payload.typecode == "B"
    assert len(buffer.payload) == 48 == buffer.nbytes
    np.testing.assert_array_equal(np.frombuffer(buffer.payload, np.float32), np.arange(12))
    payload = buffer.payload
    again = buffer.view((3, 4), np.float32)
    assert buffer.payload is payload and buffer.allocations == 1
    assert np.shares_memory(view, again)
    # Same byte count, other shape and dtype: still the same memory.
    assert buffer.view((48,), np.uint8).base is not None and buffer.allocations == 1


def test_size_change_reallocates_zeroed_and_keeps_old_views_valid() -> None:
    buffer = ReusableBuffer()
    old = buffer.view((2, 2), np.float32)
    old[:] = 7.0
    new = buffer.view((3, 2), np.float32)
    assert buffer.allocations == 2 and len(buffer.payload) == 24
    assert not np.shares_memory(old, new)
    np.testing.assert_array_equal(new, 0.0)  # fresh buffers are zero-filled
    np.testing.assert_array_equal(old, 7.0)  # a view still held keeps its memory
    assert buffer.view((0,), np.uint8).size == 0 and buffer.nbytes == 0
    with pytest.raises(ValueError):
        buffer.ensure(-1)


def test_backing_payload_only_for_exact_views() -> None:
    buffer = ReusableBuffer()
    view = buffer.view((4, 5, 3), np.uint8)
    assert backing_payload(view) is buffer.payload
    assert backing_payload(view.reshape(-1).view(np.uint32)[:15].reshape(3, 5)) is buffer.payload
    assert backing_payload(view[1:]) is None  # not from the first byte
    assert backing_payload(view[:2]) is None  # not all of it
    assert backing_payload(view[:, ::2]) is None  # not contiguous
    assert backing_payload(np.zeros((4, 5, 3), np.uint8)) is None
    assert backing_payload(np.frombuffer(array.array("f", [1.0, 2.0]), np.float32)) is None


def test_buffer_set_names_independent_buffers() -> None:
    buffers = BufferSet()
    depth = buffers.view("depth", (2, 3), np.float32)
    labels = buffers.view("labels", (2, 3), np.uint8)
    assert not np.shares_memory(depth, labels)
    assert buffers.buffer("depth") is buffers.buffer("depth")
    assert buffers.allocations == 2
    buffers.view("depth", (2, 3), np.float32)
    assert buffers.allocations == 2
