"""swapd: run many local LLM servers on one machine and hot-swap them on demand."""

from swapctl import __version__

__all__ = ["__version__"]
