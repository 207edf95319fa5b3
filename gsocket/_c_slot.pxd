# Types for the compiled twin of _slot.py (see gsocket/_accelerate.py).

cdef class SlotHost:
    cdef public object loop
    cdef public object emit
    cdef public object emit_data
    cdef public object crowded
    cdef public object when_drained
    cdef public dict slots
    cdef public Py_ssize_t max_sockets
    cdef public Py_ssize_t last_id
    cdef public bint released
    cdef public bint in_read
    cdef public list after_read

    cpdef call_soon(self, function, argument)


cdef class Slot:
    cdef public SlotHost host
    cdef public object id
    cdef public object opaque
    cdef public object state
    cdef public object sock
    cdef public int fd
    cdef public object family
    cdef public object emit
    cdef public object read_watcher
    cdef public object write_watcher
    cdef public bint reading
    cdef public bint writing
    cdef public object high
    cdef public object low
    cdef public Py_ssize_t pending_bytes
    cdef public Py_ssize_t warn_size
    cdef public long long bytes_read
    cdef public long long bytes_written
    cdef public double rtime
    cdef public double wtime
    cdef public object name

    cpdef on_readable(self)
    cpdef send(self, data, low_priority)
    cpdef queue_for(self, bint low_priority)
    cpdef message(self, kind, ud=*, data=*)
