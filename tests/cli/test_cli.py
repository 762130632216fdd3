"""The `facet` command as a new user meets it (issue 20): a default model, checked options, messages instead of
tracebacks, no output left by a failed start, inputs found and named as expected, defaults in the help."""

from __future__ import annotations

import csv

import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import write

from facetpot.testing import small_model
from facetpot.cli import main as facet
from facetpot.io.model_file import save_model
from facetpot.pretrained import DEFAULT_MODEL


@pytest.fixture
def files(tmp_path):
    """A small Si/Al/Cu/O model, a silicon crystal, an aluminium crystal, a water molecule and a broken CIF."""
    save_model(small_model(scale=0.3), tmp_path / "model.pt")
    write(tmp_path / "si.cif", bulk("Si", "diamond", a=5.43))
    write(tmp_path / "al.cif", bulk("Al", "fcc", a=4.05))
    write(tmp_path / "h2o.xyz", molecule("H2O"))
    (tmp_path / "broken.cif").write_text("data_x\n_cell_length_a oops\nloop_\n_atom_site_label\n")
    return tmp_path


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_commands_run_the_default_model_and_keep_the_old_form(files, capsys):
    """`facet relax si.cif al.cif -o out` relaxes both files with the default model (it used to load si.cif as a
    model); `facet md si.cif -o md` runs; the older `facet md MODEL si.cif` form still works (item 5)."""
    assert facet(
        [
            "relax",
            str(files / "si.cif"),
            str(files / "al.cif"),
            "-o",
            str(files / "r"),
            "--no-progress",
            "--max-steps",
            "2",
        ]
    ) in (0, 1)
    assert sorted(r["name"] for r in rows(files / "r" / "results.csv")) == ["al.cif", "si.cif"]
    assert all(r["error"] == "" for r in rows(files / "r" / "results.csv"))
    assert facet(["md", str(files / "si.cif"), "-o", str(files / "md"), "--steps", "2", "--no-progress"]) == 0
    assert (
        facet(
            [
                "md",
                str(files / "model.pt"),
                str(files / "si.cif"),
                "-o",
                str(files / "md2"),
                "--steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        facet(
            [
                "md",
                "-m",
                str(files / "model.pt"),
                str(files / "si.cif"),
                str(files / "al.cif"),
                "-o",
                str(files / "md3"),
            ]
        )
        == 2
    )
    assert "takes one structure file" in capsys.readouterr().err
    help_text = _help(["relax"], capsys)
    assert f"default: {DEFAULT_MODEL}" in help_text


@pytest.mark.parametrize(
    "argv,message",
    [
        (["relax", "{si}", "--fmax", "-0.1"], "fmax must be > 0"),
        (["relax", "{si}", "--max-steps", "-1"], "max_steps must be >= 0"),
        (["relax", "{si}", "--max-atoms", "0"], "max_atoms must be >= 1"),
        (["relax", "{si}", "--shard", "3/3"], "shard must be I/N with 0 <= I < N"),
        (["md", "{si}", "--steps", "-5"], "steps must be >= 1"),
        (["md", "{si}", "--timestep", "0"], "timestep must be > 0 fs"),
        (["md", "{si}", "--timestep", "-1"], "timestep must be > 0 fs"),
        (["md", "{si}", "--temperature", "-100"], "temperature must be >= 0.0 K"),
        (["md", "{si}", "--log-every", "0"], "log_every must be >= 1"),
        (["phonons", "{si}", "--supercell", "0", "1", "1"], "supercell must be >= 1"),
        (["predict", "{si}", "--batch-atoms", "0"], "batch_atoms must be >= 1"),
        (["relax", "{si}", "--min-distance", "-1"], "min_distance must be >= 0.0"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_options_are_refused_before_anything_is_written(files, capsys, argv, message):
    """Item 7: each used to run (500 steps, negative time, NaN positions, rc 0) or leave a folder behind."""
    out = files / "out"
    argv = [a.format(si=files / "si.cif") for a in argv] + ["-o", str(out), "-m", str(files / "model.pt")]
    assert facet(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_failed_start_leaves_nothing_that_blocks_the_rerun(files, capsys):
    """md of a structure with an element the model lacks: an error and no folder (item 7); fixed, it runs."""
    write(files / "gold.cif", bulk("Au", "fcc", a=4.08))
    args = ["-o", str(files / "md"), "-m", str(files / "model.pt"), "--steps", "1", "--no-progress"]
    assert facet(["md", str(files / "gold.cif")] + args) == 2
    assert "Au" in capsys.readouterr().err and not (files / "md").exists()
    assert facet(["md", str(files / "si.cif")] + args) == 0


def test_unreadable_files_and_molecules_get_messages(files, capsys):
    """Item 9: a broken CIF (was a bare StopIteration), eos/elastic/phonons of a molecule (a traceback, 'Singular
    matrix'), relax --symmetry of a molecule (a spglib error)."""
    model = ["-m", str(files / "model.pt")]
    for command in ("md", "eos", "elastic", "phonons"):
        assert facet([command, str(files / "broken.cif"), "-o", str(files / command)] + model) == 2
        err = capsys.readouterr().err
        assert f"facet {command}: error: cannot read" in err and "broken.cif" in err, err
    for command in ("eos", "elastic", "phonons"):
        assert facet([command, str(files / "h2o.xyz"), "-o", str(files / command)] + model) == 2
        assert f"{command} needs a crystal" in capsys.readouterr().err
    assert facet(["relax", str(files / "h2o.xyz"), "-o", str(files / "r"), "--symmetry", "--no-progress"] + model) == 1
    assert "--symmetry) needs a crystal" in rows(files / "r" / "results.csv")[0]["error"]


def test_overlapping_atoms_are_named_and_can_be_allowed(files):
    """Item 4 on the command line: the pair is named in results.csv; --min-distance 0 evaluates it."""
    write(files / "pair.extxyz", Atoms("Si2", positions=[[0, 0, 0], [0, 0, 0.05]], cell=[6, 6, 6], pbc=True))
    model = ["-m", str(files / "model.pt"), "--no-progress"]
    assert facet(["predict", str(files / "pair.extxyz"), "-o", str(files / "p")] + model) == 1
    assert "atoms 0 (Si) and 1 (Si) are 0.050 Å apart" in rows(files / "p" / "results.csv")[0]["error"]
    assert facet(["predict", str(files / "pair.extxyz"), "-o", str(files / "q"), "--min-distance", "0"] + model) == 0


def test_folders_are_searched_recursively_and_names_stay_distinct(files, capsys):
    """Item 8: a/POSCAR and b/POSCAR keep distinct names; subfolders are searched; notes, images and JSON in a
    folder are not structures; a folder without structures is an error, not '0 structure(s)'."""
    tree = files / "tree"
    for sub in ("a", "b", "deep/er"):
        (tree / sub).mkdir(parents=True)
    write(tree / "a" / "POSCAR", bulk("Si", "diamond", a=5.43), format="vasp")
    write(tree / "b" / "POSCAR", bulk("Al", "fcc", a=4.05), format="vasp")
    write(tree / "deep" / "er" / "cu.cif", bulk("Cu", "fcc", a=3.6))
    for junk in ("notes.txt", "plot.png", "meta.json", ".hidden.cif"):
        (tree / junk).write_text("not a structure")
    model = ["-m", str(files / "model.pt"), "--no-progress"]
    assert facet(["predict", str(tree), "-o", str(files / "p")] + model) == 0
    names = [r["name"] for r in rows(files / "p" / "results.csv")]
    assert names == ["a/POSCAR", "b/POSCAR", "cu.cif"], names
    (files / "empty" / "sub").mkdir(parents=True)
    (files / "empty" / "sub" / "readme.txt").write_text("nothing here")
    assert facet(["relax", str(files / "empty"), "-o", str(files / "r")] + model) == 2
    assert "no structure file in folder" in capsys.readouterr().err


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit):
        facet(argv + ["--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_help_shows_defaults_and_why_dtypes_differ(capsys):
    """Item 13: every option's default is in the help, the dtype default says why it differs by command, eval
    describes its arguments and --key's syntax, --shard says it counts from 0."""
    md = _help(["md"], capsys)
    for shown in (
        "(default: 1000)",
        "fs (default: 1.0)",
        "(default: 300.0)",
        "(default: nve)",
        "(default: float32)",
        "relaxations, MD and screening",
        "(default: 0.5)",
    ):
        assert shown in md, shown
    relax = _help(["relax"], capsys)
    assert "(default: 500)" in relax and "(default: fire)" in relax and "counted from 0" in relax
    phonons = _help(["phonons"], capsys)
    assert "(default: float64)" in phonons and "finite differences" in phonons
    ev = _help(["eval"], capsys)
    assert "LABEL=KEY" in ev and "labelled structures" in ev


def test_outputs_named_units_and_progress(files, capsys):
    """Items 11, 14, 15: commands name only files they wrote; a relaxation where nothing relaxed does not name
    relaxed.extxyz; the relax progress bar has a total; eos shows progress; eval of unlabelled structures points
    to facet predict; parity titles are in the report's units; MD frames do not carry a CIF reader's empty
    space group (P 1) and full occupancies (issue 33 item 11; a real space group or partial occupancy stays)."""
    from facetpot.plots import mae_title

    model = ["-m", str(files / "model.pt")]
    write(files / "two.extxyz", [bulk("Si", "diamond", a=5.43), bulk("Al", "fcc", a=4.05)])
    assert facet(
        ["relax", str(files / "two.extxyz"), str(files / "si.cif"), "-o", str(files / "r"), "--max-steps", "1"] + model
    ) in (0, 1)
    err = capsys.readouterr().err
    assert "3/3" in err and "relaxed.extxyz" in err
    assert facet(["relax", str(files / "broken.cif"), "-o", str(files / "r2"), "--no-progress"] + model) == 1
    err = capsys.readouterr().err
    assert "(nothing relaxed)" in err and "relaxed.extxyz" not in err
    assert facet(["elastic", str(files / "al.cif"), "-o", str(files / "el")] + model) == 0
    err = capsys.readouterr().err
    assert "facet elastic" in err and "model call" in err  # the progress bar
    assert "elastic.json" in err and "elastic.png" not in err  # elastic writes no plot
    write(files / "plain.extxyz", bulk("Si", "diamond", a=5.43))  # no energy: unlabelled
    assert facet(["eval", str(files / "plain.extxyz"), "-o", str(files / "ev")] + model) == 2
    assert "facet predict" in capsys.readouterr().err
    assert mae_title("e", 0.007604) == "MAE 7.6 meV/atom" and "GPa" in mae_title("s", 0.001)
    occupied = bulk("NaCl", "rocksalt", a=5.64)
    write(files / "nacl.cif", occupied)
    save_model(small_model(species=[11, 17], scale=0.3), files / "nacl.pt")
    assert (
        facet(
            [
                "md",
                str(files / "nacl.cif"),
                "-o",
                str(files / "md"),
                "-m",
                str(files / "nacl.pt"),
                "--steps",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    from ase.io import read

    assert "occupancy" in read(files / "nacl.cif").info  # what ASE's reader attaches ...
    frame = read(files / "md" / "trajectory.extxyz", -1)
    assert not {"occupancy", "spacegroup", "unit_cell"} & set(frame.info) and "spacegroup_kinds" not in frame.arrays


def test_small_things_a_second_user_hit(files, capsys):
    """Issue 33 items 8 and 11: --d3 before an input takes no input as its damping; --version; facet models has a
    description; one-structure commands show STRUCTURE once in their usage; a bare reader error names the file's
    kind; device "gpu" gets the choices, not torch's list of device types; predict of an unreadable file does not
    claim predicted.extxyz; a warning is one line without its source line."""
    from facetpot.cli.main import parser
    from facetpot.cli.options import optional_values_kept_apart

    args = parser().parse_args(optional_values_kept_apart(["relax", "--d3", "layered/", "-o", "out"]))
    assert (args.d3, args.inputs) == ("bj", ["layered/"])
    args = parser().parse_args(optional_values_kept_apart(["relax", "x.cif", "--d3", "zero", "-o", "out"]))
    assert (args.d3, args.inputs) == ("zero", ["x.cif"])
    args = parser().parse_args(optional_values_kept_apart(["relax", "x.cif", "-o", "out", "--d3"]))
    assert args.d3 == "bj"
    with pytest.raises(SystemExit):
        facet(["--version"])
    assert "facetpot" in capsys.readouterr().out
    assert "model cards" in _help(["models"], capsys)
    for command in ("md", "eos", "elastic", "phonons"):
        usage = _help([command], capsys)
        assert "STRUCTURE" in usage and "[input" not in usage and "structure_after_model" not in usage
    (files / "bad.cif").write_text("data_x\n")
    assert facet(["eos", str(files / "bad.cif"), "-o", str(files / "e"), "-m", str(files / "model.pt")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "bad.cif" in err and ("CIF" in err or ": " in err.split("bad.cif", 1)[1])
    assert facet(["md", str(files / "si.cif"), "-o", str(files / "g"), "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert "device must be cpu, cuda or cuda:N, got 'gpu'" in err and "xpu" not in err
    assert (
        facet(
            [
                "predict",
                str(files / "broken.cif"),
                "-o",
                str(files / "p"),
                "-m",
                str(files / "model.pt"),
                "--no-progress",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "predicted.extxyz" not in err and "nothing evaluated" in err
    from facetpot.cli.main import _one_line_warning

    assert _one_line_warning(UserWarning("the frame"), UserWarning, "x.py", 3) == "facet: warning: the frame\n"


@pytest.mark.parametrize(
    "command,module,function,hint",
    [
        (["md", "{si}", "-o", "{out}"], "facetpot.workflows.md", "run_md", "--restart"),
        (["train", "{cfg}"], "facetpot.training.trainer", "Trainer", "--resume"),
    ],
)
def test_an_interrupt_is_one_line_that_says_how_to_go_on(files, capsys, monkeypatch, command, module, function, hint):
    """Issue 33 item 9: Ctrl-C (KeyboardInterrupt; SIGTERM is turned into one) ends with exit code 130 and one
    line naming how to continue, not a traceback."""
    import importlib

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), function, interrupted)
    (files / "cfg.yaml").write_text("data: {train: x.extxyz}\n")
    argv = [a.format(si=files / "si.cif", out=files / "o", cfg=files / "cfg.yaml") for a in command]
    assert facet(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted" in err and hint in err and len(err.strip().splitlines()) == 1
