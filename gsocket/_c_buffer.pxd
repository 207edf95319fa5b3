# Types for the compiled twin of buffer.py (see gsocket/_accelerate.py).

cdef Py_ssize_t _SMALL_SLICE

cdef class ReadBuffer:
    cdef object _data
    cdef Py_ssize_t _start
    cdef Py_ssize_t _scan
    cdef object _scan_sep
    cdef list _chunks
    cdef Py_ssize_t _chunks_size

    cpdef Py_ssize_t push(self, data) except -1
    cpdef _flatten(self)
    cpdef object pop(self, nbytes)
    cpdef bytes readall(self)
    cpdef _reset(self)
    cpdef bytes _take(self, data, Py_ssize_t start, Py_ssize_t end)
    cpdef _compact(self)
    cpdef Py_ssize_t _find(self, sep) except? -2
