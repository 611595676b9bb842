"""Package marker for the generated stubs (see tools/gen_stubs.py)."""
