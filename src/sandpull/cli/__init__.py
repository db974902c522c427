"""The ``sandpull`` command line."""
