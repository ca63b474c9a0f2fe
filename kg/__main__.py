"""``python -m kg`` runs the ``kgrec`` command line."""

from kg.cli import main

raise SystemExit(main())
