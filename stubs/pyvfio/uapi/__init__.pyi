"""Package marker for the generated stubs."""
