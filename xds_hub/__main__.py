from xds_hub.cli import main

raise SystemExit(main())
