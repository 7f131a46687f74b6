from stead.cli import main

raise SystemExit(main())
