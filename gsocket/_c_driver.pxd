# Types for the compiled twin of driver.py (see gsocket/_accelerate.py).

cdef class Driver:
    cdef public object server
    cdef public object hub
    cdef public object thread_ident
    cdef public dict _owners
    cdef public dict _direct
    cdef public Py_ssize_t _next_opaque
    cdef public object dispatcher
    cdef public set _retired
    cdef public list _spares
    cdef public bint _in_route
    cdef public bint _freed
    cdef public object socket_pool
    cdef object __weakref__
