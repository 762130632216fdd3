"""Equations of state, elastic constants and phonons of a crystal: thin layers over matcalc and phonopy.

matcalc (materialsvirtuallab) computes all three for any ASE calculator, phonons through phonopy, with
band paths from seekpath; facetpot adds the model, the files a user keeps and the plots:

    equation_of_state   E(V) near the relaxed cell (volumes (1 +- ``max_strain``)^3 V0, default +-3% in volume),
                        Birch-Murnaghan fit: V0, E0, B (GPa)
    elastic_constants   C_ij (Voigt, GPa) from stress-strain fits, Voigt-Reuss-Hill bulk/shear moduli
    phonons             force constants of a supercell, band structure along seekpath's path, DOS,
                        thermal properties (F, S, C_v per formula unit... as phonopy gives them), and the
                        imaginary modes found on the mesh (frequencies below -0.01 THz), reported

Each takes an ASE calculator (``FacetCalculator`` or any other) and an ASE structure, returns a plain
dict, and with ``out_dir`` writes ``NAME.json`` and, when matplotlib is installed, ``NAME.png``.
Needs ``pip install facetpot[properties]`` (matcalc, phonopy, seekpath).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
from ase.eos import EquationOfState
from tqdm import tqdm

from ..io.atomic_write import atomic_write_text
from ..io.output_folder import check_output_folder
from ..inference.calculator import FacetCalculator
from ..structure.option_checks import at_least, positive
from ..structure.validation import MIN_DISTANCE, is_crystal
from ..io.structure_inputs import read_structure
from ..plots import load_pyplot
from ..structure.units import EV_PER_A3_TO_GPA


def _matcalc():
    try:
        import matcalc  # lazy: optional dependency (facetpot[properties])
    except ImportError:
        raise ImportError(
            "equations of state, elastic constants and phonons need matcalc and phonopy: "
            "pip install 'facetpot[properties]'"
        ) from None
    return matcalc


def _save(result: Dict[str, Any], out_dir, name: str) -> None:
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"{name}.json", json.dumps(result, indent=1))


#: default half-range of the equation of state's linear strain: volumes within +-3% of the minimum's. The bulk
#: modulus is the curvature at the minimum; matcalc's own +-10% (-27% to +33% in volume) fits the far branches
#: instead (MgO with the default model: B 157.9 GPa there, 130.4 GPa at +-1%, 129.3 GPa from -V dP/dV of the stress)
EOS_MAX_STRAIN = 0.01


def equation_of_state(
    calc,
    atoms,
    out_dir=None,
    max_strain: float = EOS_MAX_STRAIN,
    points: int = 11,
    fmax: float = 0.01,
    relax: bool = True,
) -> Dict[str, Any]:
    """E(V) at ``points`` volumes (1 + s)^3 V0 for linear strains s in [-max_strain, max_strain] around the relaxed
    cell (``relax``: relaxed to ``fmax`` eV/Å first, and the atoms and cell shape at every volume) and its
    Birch-Murnaghan fit (matcalc's EOSCalc)."""
    positive("max_strain", max_strain)
    if max_strain >= 0.5:
        raise ValueError(f"max_strain is a linear strain (a fraction of the lattice parameter), got {max_strain}")
    at_least("points", points, 5)
    positive("fmax", fmax, "eV/Å")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = (
                _matcalc()
                .EOSCalc(calc, max_abs_strain=max_strain, n_points=points, fmax=fmax, relax_structure=relax)
                .calc(atoms.copy())
            )
        except Exception as exc:  # noqa: BLE001 - pymatgen's EOSError, by name: pymatgen is matcalc's dependency
            if type(exc).__name__ != "EOSError":
                raise
            raise ValueError(
                f"no energy minimum within the volumes scanned ((1 +- {max_strain})^3 of the "
                f"{'relaxed' if relax else 'given'} cell's): "
                + ("widen --max-strain" if relax else "relax first (without --no-relax) or widen --max-strain")
                + f" ({exc})"
            ) from None
    volumes, energies = np.asarray(r["eos"]["volumes"]), np.asarray(r["eos"]["energies"])
    # ASE's Birch-Murnaghan fit of the same points: V0, E0, B0 and B0'
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    eos.fit()
    e0, b0, b0_prime, v0 = (float(x) for x in eos.eos_parameters)
    result = {
        "atoms": len(atoms),
        "max_strain": float(max_strain),
        "points": int(points),
        "volumes_A3": volumes.tolist(),
        "energies_eV": energies.tolist(),
        "bulk_modulus_GPa": float(r["bulk_modulus_bm"]),
        "r2": float(r["r2_score_bm"]),
        "birch_murnaghan": {"V0_A3": v0, "E0_eV": e0, "B0_GPa": b0 * EV_PER_A3_TO_GPA, "B0_prime": b0_prime},
        "relaxed": bool(relax),
        "relaxed_volume_A3": float(r.get("volume", atoms.get_volume())),
        "relaxed_energy_eV": float(r["energy"]) if "energy" in r else None,
    }
    _save(result, out_dir, "eos")
    if out_dir is not None:
        _eos_plot(result, Path(out_dir))
    return result


def _eos_plot(result: Dict[str, Any], out_dir: Path) -> None:
    """eos.png: E(V) and its Birch-Murnaghan fit (a cubic in V^(-2/3)), when matplotlib is there."""
    plt = load_pyplot()
    if plt is None:
        return
    volumes, energies = np.asarray(result["volumes_A3"]), np.asarray(result["energies_eV"])
    fit = np.polyfit(volumes ** (-2.0 / 3.0), energies, 3)
    bm = result["birch_murnaghan"]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    ax.plot(volumes, energies, "o", label="model")
    v = np.linspace(volumes.min(), volumes.max(), 200)
    b = result["bulk_modulus_GPa"]
    label = f"Birch-Murnaghan, B = {b:.1f} GPa, B' = {bm['B0_prime']:.2f}, V0 = {bm['V0_A3']:.2f} Å³"
    ax.plot(v, np.polyval(fit, v ** (-2.0 / 3.0)), "-", label=label)
    ax.set_xlabel("volume (Å³)")
    ax.set_ylabel("energy (eV)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "eos.png", dpi=120)
    plt.close(fig)


#: strains of the stress-strain fits: matcalc's default shear strains (up to 6%) leave the linear regime
#: (EMT copper: C44 98 GPa instead of 90), so facetpot uses +-0.5% and +-1% for all six
STRAINS = (-0.01, -0.005, 0.005, 0.01)


def elastic_constants(
    calc, atoms, out_dir=None, fmax: float = 0.01, relax: bool = True, strains: Sequence[float] = STRAINS
) -> Dict[str, Any]:
    """The relaxed-ion elastic tensor from stress-strain fits (matcalc's ElasticityCalc; the atoms relax in
    every strained cell), in GPa, and the Voigt-Reuss-Hill moduli."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = (
            _matcalc()
            .ElasticityCalc(
                calc,
                fmax=fmax,
                relax_structure=relax,
                norm_strains=strains,
                shear_strains=strains,
                relax_deformed_structures=True,
            )
            .calc(atoms.copy())
        )
    voigt = np.asarray(r["elastic_tensor"].voigt) * EV_PER_A3_TO_GPA
    cell = np.asarray(atoms.cell.cellpar())
    orthogonal = bool(np.allclose(cell[3:], 90.0, atol=1e-6))
    result = {
        "C_voigt_GPa": np.round(voigt, 6).tolist(),
        "frame": (
            "the Cartesian axes of the input cell (orthogonal: along its cell vectors)"
            if orthogonal
            else "the Cartesian axes of the input cell, which is not orthogonal: C_ij are rotated with respect "
            "to the crystal axes (give the conventional cell, e.g. the cubic one, for C11/C12/C44 "
            "along the cube edges)"
        ),
        "bulk_modulus_vrh_GPa": float(r["bulk_modulus_vrh"]) * EV_PER_A3_TO_GPA,
        "shear_modulus_vrh_GPa": float(r["shear_modulus_vrh"]) * EV_PER_A3_TO_GPA,
        "youngs_modulus_GPa": float(r["youngs_modulus"]) * EV_PER_A3_TO_GPA,
        "relaxed": bool(relax),
        "relaxed_volume_A3": float(r.get("volume", atoms.get_volume())),
    }
    if not orthogonal:
        warnings.warn(
            "elastic constants of a non-orthogonal cell are in its Cartesian frame, rotated from the crystal "
            "axes: for a cubic crystal give the conventional cubic cell",
            stacklevel=2,
        )
    _save(result, out_dir, "elastic")
    return result


def phonons(
    calc,
    atoms,
    out_dir=None,
    supercell: Optional[Sequence[int]] = None,
    displacement: float = 0.01,
    fmax: float = 1e-4,
    relax: bool = True,
    mesh: float = 30.0,
    t_max: float = 1000.0,
) -> Dict[str, Any]:
    """Phonons with phonopy (matcalc's PhononCalc): band structure along seekpath's path, DOS, thermal
    properties; ``supercell`` the diagonal of the supercell (default: matcalc's, at least 20 Å)."""
    options = {"supercell_matrix": np.diag(supercell)} if supercell is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = (
            _matcalc()
            .PhononCalc(
                calc,
                atom_disp=displacement,
                fmax=fmax,
                relax_structure=relax,
                t_max=t_max,
                write_phonon=False,
                on_imaginary_modes="warn",
                **options,
            )
            .calc(atoms.copy())
        )
    phonon = r["phonon"]
    result = _phonon_result(phonon, r["thermal_properties"], mesh)
    if result["imaginary_modes_on_mesh"]:
        warnings.warn(
            f"{result['imaginary_modes_on_mesh']} imaginary mode(s) on the mesh, lowest "
            f"{result['min_frequency_THz']:.3f} THz: the structure is not a minimum (or the supercell is too small)"
        )
    _save(result, out_dir, "phonons")
    if out_dir is not None:
        _phonon_files(phonon, Path(out_dir), mesh)
    result["phonopy"] = phonon  # for Python callers; not written to JSON
    return result


def _phonon_result(phonon, thermal, mesh: float) -> Dict[str, Any]:
    """phonons.json's content: mesh frequencies, band structure along seekpath's path, total DOS, thermal
    properties."""
    phonon.run_mesh(mesh)
    frequencies = np.asarray(phonon.mesh.frequencies)
    phonon.auto_band_structure(npoints=51)  # along seekpath's path
    band = phonon.band_structure
    labels = [
        label.replace("$", "").replace("\\mathrm{", "").replace("}", "").replace("\\Gamma", "Gamma")
        for label in (band.labels or [])
    ]
    bands = phonon.get_band_structure_dict()
    phonon.run_total_dos()
    dos = phonon.get_total_dos_dict()
    return {
        "supercell": np.asarray(phonon.supercell_matrix).tolist(),
        "min_frequency_THz": float(frequencies.min()),
        "imaginary_modes_on_mesh": int((frequencies < -0.01).sum()),
        "band_path": labels,
        "band_max_frequency_THz": float(max(np.max(f) for f in band.frequencies)),
        # the data behind phonons.png: per path segment, q-points (reduced), distances along the path (1/Å) and
        # frequencies (THz, one row per q-point); the total DOS (states/THz per unit cell) on THz points
        "band_structure": {
            "labels": labels,
            "segments": [
                {
                    "qpoints": np.asarray(q).tolist(),
                    "distances": np.asarray(d).tolist(),
                    "frequencies_THz": np.asarray(f).tolist(),
                }
                for q, d, f in zip(bands["qpoints"], bands["distances"], bands["frequencies"])
            ],
        },
        "dos": {
            "frequencies_THz": np.asarray(dos["frequency_points"]).tolist(),
            "total_dos_per_THz": np.asarray(dos["total_dos"]).tolist(),
        },
        "force_constants_file": "phonopy_params.yaml (with force constants; phonopy.load reads it)",
        "thermal": {
            "temperatures_K": np.asarray(thermal["temperatures"]).tolist(),
            "free_energy_kJ_per_mol": np.asarray(thermal["free_energy"]).tolist(),
            "entropy_J_per_K_mol": np.asarray(thermal["entropy"]).tolist(),
            "heat_capacity_J_per_K_mol": np.asarray(thermal["heat_capacity"]).tolist(),
        },
    }


def _phonon_files(phonon, out_dir: Path, mesh: float) -> None:
    """phonopy_params.yaml (with force constants) and, with matplotlib, phonons.png (bands and DOS)."""
    phonon.save(str(out_dir / "phonopy_params.yaml"), settings={"force_constants": True})
    plt = load_pyplot()
    if plt is None:
        return
    phonon.auto_total_dos(mesh=mesh)
    plot = phonon.plot_band_structure_and_dos()
    fig = plot.gcf() if hasattr(plot, "gcf") else plot
    for ax in fig.axes:  # phonopy leaves the frequency axis without its unit
        if ax.get_ylabel().lower().startswith("frequency"):
            ax.set_ylabel("Frequency (THz)")
    fig.savefig(out_dir / "phonons.png", dpi=120)
    plt.close("all")


PROPERTIES = {"eos": equation_of_state, "elastic": elastic_constants, "phonons": phonons}


def _counted(calc, bar):
    """``calc``, every calculation of which advances ``bar`` (matcalc and phonopy run many; how many depends on
    the relaxations, so the bar counts model calls without a total)."""
    calculate = calc.calculate

    def counted(*args, **kwargs):
        calculate(*args, **kwargs)
        bar.update(1)

    calc.calculate = counted
    return calc


def compute_for_file(
    kind: str,
    model,
    structure,
    out_dir,
    device: str = "cpu",
    dtype: str = "float64",
    min_distance: float = MIN_DISTANCE,
    progress: bool = False,
    dispersion=None,
    **options,
):
    """``facet eos|elastic|phonons STRUCTURE -o DIR``: the property of the structure file's last frame, which
    must be a crystal (periodic in three directions, non-zero volume); ``dispersion`` as for ``FacetCalculator``."""
    if kind not in PROPERTIES:
        raise ValueError(f"property must be one of {sorted(PROPERTIES)}, got {kind!r}")
    for n in options.get("supercell") or ():
        at_least("supercell", n, 1)
    if out_dir is not None:
        check_output_folder(out_dir)  # before any model call
    atoms = read_structure(structure)
    if not is_crystal(atoms):
        raise ValueError(
            f"{kind} needs a crystal (periodic in all three directions, with a cell); {structure} has "
            f"pbc={atoms.pbc.tolist()} and a cell volume of {abs(atoms.cell.volume):.3g} Å^3"
        )
    calc = FacetCalculator(model, device=device, dtype=dtype, min_distance=min_distance, dispersion=dispersion)
    bar = tqdm(unit="model call", desc=f"facet {kind}", disable=not progress)
    result = PROPERTIES[kind](_counted(calc, bar), atoms, out_dir=out_dir, **options)
    bar.close()
    result.pop("phonopy", None)
    return result
