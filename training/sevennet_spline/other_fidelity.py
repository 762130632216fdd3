"""The other fidelity of a multi-fidelity trim (SevenNet-MF-0): the trim fitted on one fidelity's exact port with
the biases, embedding and per-element energies of another fidelity's port (``facetpot.ports.multi_fidelity``:
the fidelities share every radial weight, all that a trim changes).

    python training/sevennet_spline/other_fidelity.py .spline_work/mf0_refit.pt \
        --port .spline_work/mf0_pbe_port.pt --other-port .spline_work/mf0_r2scan_port.pt \
        -o .spline_work/mf0_r2scan_refit.pt
"""

from __future__ import annotations

import argparse

from facetpot.inference.model_source import load_model
from facetpot.io.model_file import save_model
from facetpot.ports.multi_fidelity import other_fidelity


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("trim", help="the trim fitted on --port (refit_outputs.py's output)")
    p.add_argument("--port", required=True, help="the exact port the trim was fitted on")
    p.add_argument("--other-port", required=True, help="the exact port of the other fidelity")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args(argv)
    trim = load_model(args.trim, dtype="float64")
    out = other_fidelity(trim, load_model(args.port, dtype="float64"), load_model(args.other_port, dtype="float64"))
    save_model(out, args.output, metadata=out.metadata)
    print(f"wrote {args.output}: {out.metadata.get('source')}")


if __name__ == "__main__":
    main()
