"""`python -m reporter` is `access-reporter`."""

from .cli import main

raise SystemExit(main())
