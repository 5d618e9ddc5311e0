"""``python -m tfaas`` is the ``tfaas`` command."""

from tfaas.cli import main

raise SystemExit(main())
