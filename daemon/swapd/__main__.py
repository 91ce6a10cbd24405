from swapd.cli import main

raise SystemExit(main())
