"""swapctl: the control protocol of swapd, its sans-IO codec, clients and CLI."""
