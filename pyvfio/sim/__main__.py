"""``python -m pyvfio.sim serve --socket PATH [--device edu ...]``: see :mod:`pyvfio.sim.server`."""

from .server import main

raise SystemExit(main())
