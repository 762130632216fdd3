"""Unit conversions. facetpot works in ASE's units: eV, Å, eV/Å^3 (stress, tensile positive).

Every factor comes from ASE's CODATA constants, except ``LAMMPS_NKTV2P``, the constant LAMMPS
itself uses in ``units metal`` (bar per eV/Å^3), needed to compare with LAMMPS output exactly.
"""

from ase import units as _ase

#: eV/Å^3 -> GPa (160.2...)
EV_PER_A3_TO_GPA = 1.0 / _ase.GPa
#: GPa -> eV/Å^3
GPA_TO_EV_PER_A3 = _ase.GPa
#: kBar -> eV/Å^3 (VASP and MPtrj stresses are in kBar; 1 kBar = 0.1 GPa)
KBAR_TO_EV_PER_A3 = 0.1 * _ase.GPa
#: eV/Å^3 -> bar
EV_PER_A3_TO_BAR = 1.0 / _ase.bar
#: LAMMPS ``units metal``: pressure in bar = LAMMPS_NKTV2P * energy / volume (eV/Å^3)
LAMMPS_NKTV2P = 1.6021765e6
