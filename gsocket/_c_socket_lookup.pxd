# Types for the compiled twin of _socket_lookup.py (see gsocket/_accelerate.py).

from cpython.exc cimport PyErr_Clear
from cpython.ref cimport PyObject, Py_XDECREF

cdef extern from "pythread.h":
    unsigned long _get_ident "PyThread_get_thread_ident" ()

# greenlet's C API (greenlet.h ships inside the greenlet package).
cdef extern from "greenlet.h":
    ctypedef struct PyGreenlet:
        pass
    PyGreenlet* PyGreenlet_GetCurrent()
    PyGreenlet* PyGreenlet_GetParent(PyGreenlet*)
    void PyGreenlet_Import()
    void* _PyGreenlet_API

cdef inline int _greenlet_init() except -1:
    PyGreenlet_Import()
    if _PyGreenlet_API == NULL:
        raise ImportError("greenlet's C API (greenlet._C_API) did not load")
    return 0

cdef inline bint _in_hub_of(object hub):
    # What _in_hub_of_pure returns, without a Python call or attribute read.
    cdef PyGreenlet* current = PyGreenlet_GetCurrent()
    cdef PyGreenlet* parent
    cdef bint answer
    if current == NULL:
        PyErr_Clear()
        return False
    parent = PyGreenlet_GetParent(current)
    if parent == NULL:
        PyErr_Clear()   # the main greenlet: no parent, and maybe no error set
    answer = <PyObject*>current == <PyObject*>hub or <PyObject*>parent == <PyObject*>hub
    Py_XDECREF(<PyObject*>parent)
    Py_XDECREF(<PyObject*>current)
    return answer

cpdef _hub_driver()
cpdef _hub_pool()
