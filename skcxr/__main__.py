"""``python -m skcxr`` runs the command line."""

from ._cli import console_main

raise SystemExit(console_main())
