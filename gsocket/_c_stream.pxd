# Types for the compiled twin of _stream.py (see gsocket/_accelerate.py).

cimport cython

from gsocket._c_slot cimport Slot, SlotHost as _TypedSlotHost

cdef class StreamSlot(Slot):
    cdef public object recv
    cdef public object write_one
    cdef public Py_ssize_t read_size
    cdef public bint write_shut
    cdef public object below_waiters
    cdef public object parent

    @cython.locals(host=_TypedSlotHost, size=Py_ssize_t, received=Py_ssize_t, pending=list)
    cpdef on_readable(self)
    @cython.locals(total=Py_ssize_t, written=Py_ssize_t)
    cpdef send(self, data, low_priority)
