"""swapctl: the control protocol of swapd, its sans-IO codec, clients and CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("swapd")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
