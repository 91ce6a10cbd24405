"""swapd: run many local LLM servers on one machine and hot-swap them on demand."""

__version__ = "0.1.0"
