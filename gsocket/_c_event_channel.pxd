# Types for the compiled twin of _event_channel.py (see gsocket/_accelerate.py).

cdef class EventChannel:
    cdef object _events
    cdef object _loop
    cdef object _hub
    cdef object _poller
    cdef bint _wake_scheduled
    cdef public object push
    cdef public object push_data
    cdef list _drain_callbacks
    cdef object _exit
    cdef public object on_stall
    cdef bint _stall_check_armed
    cdef object _direct_poller
    cdef dict _direct_handlers
    cdef object __weakref__
