# Loaded by the Python interpreter at start-up when this directory is on PYTHONPATH
# (the site module imports "sitecustomize" if it can). It makes one host name,
# SHADOWSYNC_PYSDK_HOST, resolve to SHADOWSYNC_PYSDK_ADDR (default 127.0.0.1) for this
# process only, so that a test suite written for an AWS IoT endpoint name reaches a
# local server without any change to the machine's resolver. Everything else resolves
# as usual. TLS still checks the server certificate against the name.
import os
import socket

_NAME = os.environ.get("SHADOWSYNC_PYSDK_HOST", "").lower().rstrip(".")
_ADDR = os.environ.get("SHADOWSYNC_PYSDK_ADDR", "127.0.0.1")


def _mapped(host):
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return None
    if isinstance(host, str) and host.lower().rstrip(".") == _NAME:
        return _ADDR
    return None


if _NAME:
    _getaddrinfo = socket.getaddrinfo
    _gethostbyname = socket.gethostbyname
    _gethostbyname_ex = socket.gethostbyname_ex

    def getaddrinfo(host, *args, **kwargs):
        return _getaddrinfo(_mapped(host) or host, *args, **kwargs)

    def gethostbyname(host):
        return _mapped(host) or _gethostbyname(host)

    def gethostbyname_ex(host):
        addr = _mapped(host)
        if addr:
            return (_NAME, [], [addr])
        return _gethostbyname_ex(host)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
