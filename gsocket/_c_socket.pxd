# Types for the compiled twin of socket.py (see gsocket/_accelerate.py).

cimport cython

from gsocket._c_buffer cimport ReadBuffer as _TypedReadBuffer
from gsocket._c_socket_pool cimport Entry as _TypedEntry, SocketPool as _TypedSocketPool
from gsocket._c_stream cimport StreamSlot as _TypedStreamSlot
from gsocket._c_socket_lookup cimport _get_ident, _hub_pool

@cython.locals(pool=_TypedSocketPool, entry=_TypedEntry, buffer=_TypedReadBuffer)
cpdef read(socket_id, n=*, timeout=*)

@cython.locals(stream=_TypedStreamSlot)
cpdef drain(socket_id, below=*, timeout=*)

@cython.locals(stream=_TypedStreamSlot)
cpdef write(socket_id, data)

@cython.locals(pool=_TypedSocketPool, entry=_TypedEntry, stream=_TypedStreamSlot)
cdef _TypedStreamSlot _stream_of(socket_id)
