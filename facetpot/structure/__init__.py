"""The bottom layer: a structure as given (``adaptors``: pymatgen -> ASE), checked (``validation``: one cell and
distance check), in ASE's units (``units``), with user options checked (``option_checks``), and as a neighbour graph
(``neighbors``: vesin's radius graph; ``graph``: the ``AtomicGraph`` every model call takes).

Nothing here imports the rest of the package.
"""
