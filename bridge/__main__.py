"""`python -m bridge` is the `engine-bridge` command."""

from .cli import main

raise SystemExit(main())
