"""swaptui: the live Textual dashboard of a swapd daemon, a pure client of its control socket."""
