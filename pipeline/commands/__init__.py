"""The command groups of ``vmgate-rating``; :mod:`pipeline.cli` assembles them.

Each module adds its subcommands (``add_commands``) with ``run`` set to the function that runs
one; those functions parse nothing themselves and hold no logic beyond calling the pipeline
and printing what it returns.
"""
