"""Modal screens: help, confirmation, and the daemon's verdict on a reload."""
