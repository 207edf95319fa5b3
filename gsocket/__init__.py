"""gsocket: skynet's socket layer on gevent."""

__version__ = "0.1.0"
