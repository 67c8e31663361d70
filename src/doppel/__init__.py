"""doppel: an open face-replacement studio for film and video work."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("doppel")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
