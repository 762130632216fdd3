"""Adaptors from other structure types to ASE Atoms."""

from __future__ import annotations

from ase import Atoms


def to_atoms(structure):
    """ASE Atoms as is; pymatgen Structure/Molecule through pymatgen's AseAtomsAdaptor."""
    if isinstance(structure, Atoms):
        return structure
    try:  # optional dependency (facetpot[pymatgen])
        from pymatgen.core import Molecule, Structure
    except ImportError:
        Structure = Molecule = ()
    if Structure and isinstance(structure, (Structure, Molecule)):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_atoms(structure)
    raise TypeError(
        f"expected ase.Atoms or a pymatgen Structure/Molecule, got {type(structure).__name__}"
        + (" (install pymatgen: pip install facetpot[pymatgen])" if not Structure else "")
    )
