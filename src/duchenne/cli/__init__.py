"""The ``duchenne`` command line."""
