# Types for the compiled twin of _socket_pool.py (see gsocket/_accelerate.py).

cimport cython

from gsocket._c_buffer cimport ReadBuffer as _TypedReadBuffer
from gsocket._c_stream cimport StreamSlot as _TypedStreamSlot

cdef class Entry:
    cdef public object id
    cdef public _TypedReadBuffer buffer
    cdef public bint connected
    cdef public object connect_error
    cdef public object read_required
    cdef public object reader
    cdef public object callback
    cdef public object paused
    cdef public object closing
    cdef public object buffer_limit
    cdef public object on_warning
    cdef public object protocol
    cdef public bint is_listener
    cdef public _TypedStreamSlot stream


cdef class SocketPool:
    cdef public object driver
    cdef public object server
    cdef public object loop
    cdef public object hub
    cdef public object call_soon
    cdef public unsigned long thread_ident
    cdef public dict entries
    cdef public dict onclose
    cdef public dict abandoned
    cdef public dict _abandoned_timers
    cdef public dict _abandoned_checks
    cdef public dict open_waiters
    cdef public object opaque
    cdef public dict handlers

    cpdef wake(self, Entry entry)
    @cython.locals(entry=Entry, size=Py_ssize_t, buffer=_TypedReadBuffer)
    cpdef on_bytes(self, socket_id, data)
    cpdef suspend(self, Entry entry, required, timeout)
