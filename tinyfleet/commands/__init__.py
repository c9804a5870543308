"""Sub-commands of ``tinyfleet``; each module exposes ``register(subparsers)``."""
