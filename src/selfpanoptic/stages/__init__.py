"""The stage layer: one module per ``selfpanoptic`` command, the only layer that knows files and rules.

Each module has ``HELP`` (one line), ``PARENTS`` (the shared option parsers of
:mod:`.common` it takes), ``add_arguments(parser)`` and ``run(args)``. A stage parses
its options, opens its inputs, calls the library and writes its outputs; the library never imports
this package. The workflow reruns a stage when a module in its import closure changes
(:func:`selfpanoptic.provenance.stage_code_hash`), so this ``__init__`` imports nothing.
"""
