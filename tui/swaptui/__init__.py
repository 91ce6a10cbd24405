"""swaptui: the live Textual dashboard of a swapd daemon, a pure client of its control socket."""

from swapctl import __version__

__all__ = ["__version__"]
