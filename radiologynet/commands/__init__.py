"""Sub-commands of the ``radiologynet`` CLI: one module each, each with ``register(subparsers)``.

A module's ``register`` adds its parser and sets ``func`` (taking the parsed ``args`` and
returning an exit code) with ``parser.set_defaults(func=...)``.
"""
