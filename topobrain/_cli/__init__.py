"""Subcommands of the ``topobrain`` command, one module each."""
