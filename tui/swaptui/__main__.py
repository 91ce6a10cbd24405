"""`python -m swaptui` is the `swaptui` command."""

from swaptui.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
