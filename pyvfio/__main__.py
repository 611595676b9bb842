"""``python -m pyvfio``: see :mod:`pyvfio.cli`."""

from .cli import main

raise SystemExit(main())
