"""`python -m tuichat` runs the command line."""

from tuichat.cli import main

raise SystemExit(main())
