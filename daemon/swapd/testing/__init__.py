"""Test helpers that ship with swapd: the fake upstream server."""
