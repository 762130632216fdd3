"""The ``facet`` command line: one module per subcommand (``train``, ``distill``, ``convert``,
``convert_sevennet``, ``evaluate`` (``facet eval``), ``relax``, ``predict``, ``md``, ``material_properties``
(``facet eos|elastic|phonons``), ``models``, ``export``, ``lammps``), the options they share in ``options``, the
parser and error handling in ``main``."""

from .main import main, parser

__all__ = ["main", "parser"]
