# Types for the compiled twin of socket.py (see gsocket/_accelerate.py).

cimport cython

from gsocket._c_buffer cimport ReadBuffer as _TypedReadBuffer
from gsocket._c_socket_pool cimport Entry as _TypedEntry, SocketPool as _TypedSocketPool

@cython.locals(pool=_TypedSocketPool, entry=_TypedEntry, buffer=_TypedReadBuffer)
cpdef read(socket_id, n=*, timeout=*)
