"""Command-line interface: one command per user task, thin over the library modules."""
