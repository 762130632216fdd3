"""Architecture rules for the facetpot package (issue 8), checked on its source with ``ast``.

Nothing from the package is imported, so this is fast and has no side effects.  The rules:

1. No import cycle between facetpot modules.  Every import statement counts, lazy (function-level)
   and ``if TYPE_CHECKING:`` ones included: a lazy import is still a dependency.  The root
   ``__init__`` resolves its exports with ``importlib`` strings at attribute access; those are not
   followed, so ``from . import __version__`` is an edge to ``facetpot`` only.
2. ``facetpot/nn/`` is the bottom layer: it imports only from ``facetpot.nn`` and third parties.
3. Training, data, export, ``evaluate.py`` and ``cli/`` never import ``facetpot.inference.calculator``
   (directly or via the root's lazy exports): they load models through ``facetpot.inference.model_source``
   and ``inference.prepare``.
4. No module uses another facetpot module's private names (``from .x import _name`` or
   ``module._name``); dunders are fine, and so are third-party ones like ``torch._C``.
   Private access through an *instance* of a facetpot class (``cache._locate``) is out of scope:
   ``ast`` cannot tell what type an object has.
5. Imports sit at the top of the module.  A function-, method- or class-level import of a facetpot
   module, or of a third-party module outside ``LAZY_OK``, needs a ``# lazy: <reason>`` comment on
   its line; imports under ``if TYPE_CHECKING:`` are allowed.
6. No function or method is longer than ``MAX_FUNCTION_LINES`` lines (``def`` to its last line, docstring
   included): a longer one does several things that deserve names. The same holds for the C++ of the LAMMPS
   plugin (``md/lammps/*.cpp``, opening brace to closing brace).
7. The command line is one module per command: every module of ``facetpot/cli/`` other than ``SHARED_CLI``
   defines ``add_to(subparsers)`` and ``run(args)``, and ``cli/main.py`` registers each of them in ``COMMANDS``;
   no command module imports another (what they share lives in ``cli/options.py``).
8. The tests' oracles live in ``facetpot/testing.py`` only: no other module defines a function named
   ``reference_*`` or ``*_oracle``, and no module of the package imports ``facetpot.testing``.
9. The tests mirror the package: every folder of ``tests/`` that holds tests is named after a subpackage of
   ``facetpot/`` (``tests/nn/`` tests ``facetpot/nn/``); support folders (``TEST_SUPPORT``) hold no tests.
10. One layout loop: the convolution's block layout (which paths read an input block, where their weights
    start) and the expansion of W per block are computed in ``nn/conv_paths.py`` only. Elsewhere no module
    calls ``weight_offsets``, compares a path's ``.block`` (the loop that groups paths by block), or narrows
    ``weights`` into blocks (``weights.narrow(1, ...)``: use ``expand_block_weights``).
11. One backend setting: only ``inference/backend_choice.py`` names the environment variable
    ``FACETPOT_BACKEND`` (as a string constant); everything else asks it (``BACKEND_ENV``, ``select_backend``).
12. One structure check: the zero-volume threshold ``MIN_CELL_VOLUME`` is named only in ``structure/validation.py``
    (everything else asks ``has_volume`` / ``spans_volume`` / ``is_crystal``), and ASE's Voigt conversion
    ``full_3x3_to_voigt_6_stress`` only in ``inference/ase_results.py``.
14. Benchmarks record results one way: no script of ``benchmarks/`` but ``harness.py`` opens or writes
    ``RESULTS.md`` (they call ``harness.record_run`` / ``append_results``), and ``RESULTS.md`` is exactly what
    ``harness.render_results`` makes of ``benchmarks/records/`` (render it after editing a record).
15. Benchmarks build their test crystals one way: no script of ``benchmarks/`` but ``systems.py`` builds Si or MgO
    with ASE's ``bulk`` (in code or in a worker's code string); they ask ``systems.silicon`` / ``rocksalt_mgo``.
13. Packages in layers (``LAYERS``, lowest first): every top-level module and subpackage has a layer, imports
    only from its own layer or lower ones, and no two of one layer import each other.

Each checker takes the package folder and returns violations as ``path:line: message``; the
``test_selftest_*`` functions run the checkers on tiny synthetic packages to show each can fail.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "facetpot"
BENCHMARKS = PACKAGE.parent / "benchmarks"

# Optional or heavy third-party modules that may be imported inside functions without a marker.
LAZY_OK = (
    "matplotlib",
    "tensorboard",
    "torch.utils.tensorboard",
    "pymatgen",
    "tqdm",
    "sevenn",
    "lammps",
    "phonopy",
    "seekpath",
    "matcalc",
    "cuequivariance_torch",
    "cuequivariance",
    "triton",
    "torch._inductor",
    "torch.export",
    "torch.fx",  # torch submodules that pull in compilers
)
LAZY_MARK = re.compile(r"#\s*lazy:\s*\S")
NO_CALCULATOR = ("training", "data", "export", "evaluate", "cli")  # relative to the package
CALCULATOR = "inference.calculator"  # the ASE calculator's module, relative to the package
BACKEND_SETTING = ("inference.backend_choice", "FACETPOT_BACKEND")  # the one module that names the variable
#: the package's layers, lowest first: the data flow (structures -> graph -> model -> inference) and what is built
#: on it (training, export, workflows), then what drives everything (the command line, the demo)
LAYERS = (
    ("nn",),
    ("structure",),
    ("model", "derivatives", "descriptors", "hessian", "io", "pretrained", "data", "dispersion", "plots"),
    ("ports", "inference", "testing"),
    ("training", "evaluate", "export", "lammps", "workflows", "torchsim"),
    ("distill",),
    ("cli", "demo"),
)
ONE_DEFINITION = {"MIN_CELL_VOLUME": "structure.validation", "full_3x3_to_voigt_6_stress": "inference.ase_results"}
MAX_FUNCTION_LINES = 60
SHARED_CLI = ("__init__", "__main__", "main", "options")  # the modules of facetpot/cli/ that are not commands


@dataclass
class Import:
    where: str  # path:line, path relative to the package's parent
    importer: str  # module name of the importing file
    targets: list[str]  # facetpot modules this statement imports
    external: list[str]  # third-party modules it imports
    names: list[tuple[str, str]] = field(default_factory=list)  # (facetpot module, name) of from-imports
    binds: dict[str, str] = field(default_factory=dict)  # local name -> facetpot module it is bound to
    nested: bool = False  # inside a function or class body
    type_checking: bool = False
    marked: bool = False  # carries "# lazy: <reason>"


def module_names(root: Path) -> dict[str, Path]:
    """Module name -> file, e.g. ``facetpot.nn`` -> facetpot/nn/__init__.py."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _owner(name: str, modules) -> str:
    """The longest known module that ``name`` starts with."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None) if isinstance(node, ast.If) else None
    return getattr(test, "id", getattr(test, "attr", None)) == "TYPE_CHECKING"


def _resolve(node, here: str, modules, imp: Import) -> None:
    """Fill ``imp`` from an import statement; ``here`` is the package relative imports start from."""
    pkg = here.split(".")[0]
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] != pkg:
                imp.external.append(alias.name)
                continue
            imp.targets.append(_owner(alias.name, modules))
            imp.binds[alias.asname or pkg] = imp.targets[-1] if alias.asname else pkg
        return
    base = node.module or ""
    if node.level:
        up = here.split(".")[: len(here.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    if base.split(".")[0] != pkg:
        imp.external.append(base)
        return
    for alias in node.names:
        sub = f"{base}.{alias.name}"  # ``from .pkg import name`` where ``name`` is a submodule
        if sub in modules:
            imp.targets.append(sub)
            imp.binds[alias.asname or alias.name] = sub
        else:
            imp.targets.append(_owner(base, modules))
            imp.names.append((_owner(base, modules), alias.name))


def parse(root: Path):
    """All import statements of the package, and each file's module name, path and syntax tree."""
    modules, imports, files = module_names(root), [], []
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    for mod, path in modules.items():
        source = path.read_text()
        lines, tree = source.splitlines(), ast.parse(source, str(path))
        rel = path.relative_to(root.parent).as_posix()
        here = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        files.append((mod, rel, tree))

        def visit(nodes, nested, tc):
            for node in nodes:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    text = lines[node.lineno - 1 : node.end_lineno]
                    imp = Import(
                        f"{rel}:{node.lineno}",
                        mod,
                        [],
                        [],
                        nested=nested,
                        type_checking=tc,
                        marked=any(LAZY_MARK.search(line) for line in text),
                    )
                    _resolve(node, here, modules, imp)
                    imports.append(imp)
                elif _is_type_checking(node):
                    visit(node.body, nested, True)
                    visit(node.orelse, nested, tc)
                else:
                    visit(ast.iter_child_nodes(node), nested or isinstance(node, scopes), tc)

        visit(tree.body, False, False)
    return modules, imports, files


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def check_cycles(root: Path) -> list[str]:
    """Every import edge a -> b with a reachable from b, named with its cycle's members (the SCC)."""
    modules, imports, _ = parse(root)
    graph = {m: set() for m in modules}
    for imp in imports:
        graph[imp.importer].update(t for t in imp.targets if t in modules)
    reach = {m: _reachable(graph, m) for m in modules}
    out = []
    for imp in imports:
        for t in dict.fromkeys(t for t in imp.targets if t in modules and imp.importer in reach[t]):
            scc = sorted(m for m in reach[t] if t in reach[m])
            out.append(f"{imp.where}: {imp.importer} -> {t} is part of the import cycle {{{', '.join(scc)}}}")
    return out


def check_nn_layer(root: Path) -> list[str]:
    nn = f"{root.name}.nn"
    return [
        f"{imp.where}: {imp.importer} imports {t}; facetpot.nn may only import facetpot.nn and third-party modules"
        for imp in parse(root)[1]
        if imp.importer == nn or imp.importer.startswith(nn + ".")
        for t in dict.fromkeys(imp.targets)
        if t != nn and not t.startswith(nn + ".")
    ]


def _lazy_exports(root: Path) -> dict[str, str]:
    """The root ``__init__``'s ``_EXPORTS`` table: name -> module (``facetpot.inference.calculator``)."""
    for node in ast.parse((root / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets):
            return {k: root.name + v if v.startswith(".") else v for k, v in ast.literal_eval(node.value).items()}
    return {}


def check_no_calculator(root: Path) -> list[str]:
    calc, exports = f"{root.name}.{CALCULATOR}", _lazy_exports(root)
    layers = tuple(f"{root.name}.{name}" for name in NO_CALCULATOR)
    out = []
    for imp in parse(root)[1]:
        if imp.importer in layers or imp.importer.startswith(tuple(f"{x}." for x in layers)):
            via_root = [exports.get(n) for m, n in imp.names if m == root.name]
            if calc in imp.targets or calc in via_root:
                out.append(
                    f"{imp.where}: {imp.importer} imports {calc}; load models through "
                    f"facetpot.inference.model_source / inference.prepare instead"
                )
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def check_private_names(root: Path) -> list[str]:
    modules, imports, files = parse(root)
    out = [
        f"{imp.where}: {imp.importer} imports private name {name} from {mod}"
        for imp in imports
        for mod, name in imp.names
        if mod != imp.importer and _private(name)
    ]
    for mod, rel, tree in files:
        bound = {k: v for imp in imports if imp.importer == mod for k, v in imp.binds.items()}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                head, _, rest = ast.unparse(node.value).partition(".")  # ``m.sub`` of ``m.sub._x``
                target = bound.get(head, "") + (f".{rest}" if rest else "")
                if target in modules and target != mod:
                    out.append(f"{rel}:{node.lineno}: {mod} uses private name {target}.{node.attr}")
    return out


def check_top_level_imports(root: Path) -> list[str]:
    fix = "move it to the top of the module or mark the line '# lazy: <reason>'"
    out = []
    for imp in parse(root)[1]:
        if imp.nested and not imp.type_checking and not imp.marked:
            out += [f"{imp.where}: function/class-level import of {t}; {fix}" for t in dict.fromkeys(imp.targets)]
            out += [
                f"{imp.where}: function/class-level import of {name}, not in LAZY_OK; {fix}"
                for name in imp.external
                if not any(name == ok or name.startswith(ok + ".") for ok in LAZY_OK)
            ]
    return out


def check_function_length(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    out = []
    for mod, rel, tree in parse(root)[2]:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    out.append(f"{rel}:{node.lineno}: {node.name} has {lines} lines (at most {limit}); split it")
    return out


PLUGIN_SOURCES = Path(__file__).resolve().parents[1] / "md" / "lammps"
CPP_CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|else|do|try)\b")
CPP_TYPE = re.compile(r"\b(namespace|struct|class|enum)\b[^(]*$")


def cpp_functions(text: str) -> list[tuple[str, int, int]]:
    """(name, line of the opening brace, lines to the closing brace) of every function body in C++ ``text``,
    methods inside classes included; lambdas and blocks count as part of the function around them."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group())  # noqa: E731  (keeps line numbers)
    code = re.sub(r"//[^\n]*|/\*.*?\*/", blank, text, flags=re.S)
    code = re.sub(r'"(?:\\.|[^"\\\n])*"', blank, code)
    out, stack, header_start = [], [], 0
    for i, ch in enumerate(code):
        if ch == "{":
            header = code[header_start:i]
            is_fn = (
                "(" in header
                and not any(kind == "fn" for kind, _, _ in stack)
                and not CPP_CONTROL.search(header)
                and not CPP_TYPE.search(header)
                and not header.rstrip().endswith("=")
            )
            names = re.findall(r"([\w:~]+)\s*\(", header)
            stack.append(("fn" if is_fn else "block", names[0] if names else "?", code.count("\n", 0, i) + 1))
        elif ch == "}":
            kind, name, line = stack.pop()
            if kind == "fn":
                out.append((name, line, code.count("\n", 0, i) + 2 - line))
        if ch in "{};":
            header_start = i + 1
    return out


def check_cpp_function_length(folder: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    return [
        f"{path.name}:{line}: {name} has {lines} lines (at most {limit}); split it"
        for path in sorted(folder.glob("*.cpp"))
        for name, line, lines in cpp_functions(path.read_text())
        if lines > limit
    ]


def check_cli_layout(root: Path) -> list[str]:
    cli = root / "cli"
    if not cli.is_dir():
        return [f"{root.name}/cli: the command line is not a package"]
    commands = {p.stem: p for p in sorted(cli.glob("*.py")) if p.stem not in SHARED_CLI}
    out = []
    for name, path in commands.items():
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        out += [f"{root.name}/cli/{name}.py: defines no {f}()" for f in ("add_to", "run") if f not in defined]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported = [node.module] if node.module else [a.name for a in node.names]
                out += [
                    f"{root.name}/cli/{name}.py:{node.lineno}: imports the command module {m}; shared code "
                    "goes in cli/options.py"
                    for m in imported
                    if m in commands
                ]
    main = cli / "main.py"
    registered = set()
    for node in ast.walk(ast.parse(main.read_text()) if main.is_file() else ast.Module(body=[], type_ignores=[])):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "COMMANDS" for t in node.targets):
            registered = {getattr(e, "id", "") for e in getattr(node.value, "elts", [])}
    out += [f"{root.name}/cli/main.py: COMMANDS lacks {name}" for name in commands if name not in registered]
    return out


def check_oracles(root: Path) -> list[str]:
    modules, imports, files = parse(root)
    testing = f"{root.name}.testing"
    out = [
        f"{imp.where}: {imp.importer} imports {testing}; the package never uses the tests' oracles"
        for imp in imports
        if testing in imp.targets and imp.importer != testing
    ]
    for mod, rel, tree in files:
        if mod == testing:
            continue
        out += [
            f"{rel}:{n.lineno}: oracle {n.name} outside {root.name}/testing.py"
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef) and (n.name.startswith("reference_") or n.name.endswith("_oracle"))
        ]
    return out


TESTS = Path(__file__).resolve().parent
#: folders of tests/ that hold no tests of their own: inputs of tests elsewhere
TEST_SUPPORT = ("cpp", "__pycache__")


def check_tests_mirror(tests: Path, root: Path) -> list[str]:
    """Every folder of ``tests`` with test files is a subpackage of ``root``; support folders hold no tests."""
    out = []
    for folder in sorted(p for p in tests.rglob("*") if p.is_dir() and "__pycache__" not in p.parts):
        rel = folder.relative_to(tests)
        has_tests = any(folder.glob("test_*.py"))
        if rel.parts[-1] in TEST_SUPPORT:
            out += [f"tests/{rel.as_posix()}: a support folder holds tests"] if has_tests else []
        elif not (root.joinpath(*rel.parts) / "__init__.py").is_file():
            out.append(f"tests/{rel.as_posix()}: no package {root.name}/{rel.as_posix()} to mirror")
    return out


CONV_PATHS = "nn.conv_paths"  # the module that owns the convolution's block layout


def _layout_code(node: ast.AST) -> str:
    """What block-layout bookkeeping ``node`` does, or ""."""
    if isinstance(node, ast.Attribute) and node.attr == "weight_offsets":
        return "calls weight_offsets"
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        if any(isinstance(side, ast.Attribute) and side.attr == "block" for side in sides):
            return "groups paths by .block"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "narrow"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "weights"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value == 1
    ):
        return "narrows weights into blocks"
    return ""


def check_one_layout_loop(root: Path) -> list[str]:
    out = []
    for mod, rel, tree in parse(root)[2]:
        if mod == f"{root.name}.{CONV_PATHS}":
            continue
        out += [
            f"{rel}:{n.lineno}: {what}; the block layout lives in {root.name}/nn/conv_paths.py"
            for n in ast.walk(tree)
            if (what := _layout_code(n))
        ]
    return out


def check_one_backend_setting(root: Path) -> list[str]:
    home, name = BACKEND_SETTING
    return [
        f"{rel}:{n.lineno}: names {name}; only {root.name}/{home.replace('.', '/')}.py reads it"
        for mod, rel, tree in parse(root)[2]
        if mod != f"{root.name}.{home}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and name in n.value and not _is_docstring(n, tree)
    ]


def check_one_definition(root: Path) -> list[str]:
    """Names (imported or used) outside the one module that owns them (``ONE_DEFINITION``)."""
    out = []
    for mod, rel, tree in parse(root)[2]:
        for n in ast.walk(tree):
            names = (
                [a.name for a in n.names]
                if isinstance(n, ast.ImportFrom)
                else [n.id]
                if isinstance(n, ast.Name)
                else [n.attr]
                if isinstance(n, ast.Attribute)
                else []
            )
            out += [
                f"{rel}:{n.lineno}: {name}; it belongs to {root.name}/{ONE_DEFINITION[name].replace('.', '/')}.py"
                for name in dict.fromkeys(names)
                if name in ONE_DEFINITION and mod != f"{root.name}.{ONE_DEFINITION[name]}"
            ]
    return out


def _unit(module: str) -> str:
    """The top-level module or subpackage a module belongs to (``facetpot.nn.conv.density`` -> ``nn``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def check_layers(root: Path, layers=LAYERS) -> list[str]:
    level = {name: k for k, names in enumerate(layers) for name in names}
    modules, imports, _ = parse(root)
    out = [
        f"{root.name}/{u}: not in LAYERS; give it a layer"
        for u in sorted({_unit(m) for m in modules} - {""})
        if u not in level
    ]
    edges: dict[tuple[str, str], str] = {}
    for imp in imports:
        for t in imp.targets:
            a, b = _unit(imp.importer), _unit(t)
            if a and b and a != b and a in level and b in level:
                edges.setdefault((a, b), imp.where)
    for (a, b), where_ in edges.items():
        if level[a] < level[b]:
            out.append(f"{where_}: {a} (layer {level[a]}) imports {b} (layer {level[b]}), a higher layer")
        elif level[a] == level[b] and (b, a) in edges and a < b:
            out.append(f"{where_}: {a} and {b} import each other ({edges[(b, a)]})")
    return out


def check_results_written_once(folder: Path) -> list[str]:
    """Calls of open / write_text / write_bytes whose call text names RESULTS, outside harness.py."""
    out = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "harness.py":
            continue
        source = path.read_text()
        for n in ast.walk(ast.parse(source)):
            if (
                isinstance(n, ast.Call)
                and getattr(n.func, "id", getattr(n.func, "attr", "")) in ("open", "write_text", "write_bytes")
                and "RESULTS" in (ast.get_source_segment(source, n) or "")
            ):
                out.append(f"{path.parent.name}/{path.name}:{n.lineno}: writes RESULTS.md; call harness.record_run")
    return out


def check_results_match_records(folder: Path) -> list[str]:
    """RESULTS.md against its records' rendering by ``folder/harness.py``: the first line where they differ."""
    spec = importlib.util.spec_from_file_location(f"_harness_{abs(hash(folder))}", folder / "harness.py")
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    have = (folder / "RESULTS.md").read_text().splitlines() if (folder / "RESULTS.md").is_file() else []
    want = harness.render_results().splitlines()
    for k, (a, b) in enumerate(itertools.zip_longest(have, want), 1):
        if a != b:
            return [
                f"{folder.name}/RESULTS.md:{k}: {a!r} where the records give {b!r}; python benchmarks/harness.py render"
            ]
    return []


def check_systems_built_once(folder: Path) -> list[str]:
    """Lines that build Si or MgO with ASE's ``bulk(`` (code or worker code strings) outside systems.py."""
    out = []
    for path in sorted(folder.glob("*.py")):
        if path.name != "systems.py":
            for k, line in enumerate(path.read_text().splitlines(), 1):
                if re.search(r"\bbulk\(\s*[\"'](Si|MgO)[\"']", line):
                    out.append(f"{path.parent.name}/{path.name}:{k}: builds a crystal; use benchmarks/systems.py")
    return out


def _is_docstring(node: ast.Constant, tree: ast.Module) -> bool:
    """Docstrings may mention the variable: they document it, they do not read it."""
    holders = [
        n for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    return any(h.body and isinstance(h.body[0], ast.Expr) and h.body[0].value is node for h in holders)


def _report(rule: str, violations: list[str]) -> str:
    return f"{rule}: {len(violations)} violation(s)\n" + "\n".join(violations)


def test_no_import_cycles():
    assert not (v := check_cycles(PACKAGE)), _report("import cycles between facetpot modules", v)


def test_nn_imports_only_nn():
    assert not (v := check_nn_layer(PACKAGE)), _report("facetpot.nn imports the rest of the package", v)


def test_no_calculator_in_training_data_export_evaluate_cli():
    assert not (v := check_no_calculator(PACKAGE)), _report("facetpot.calculator imported", v)


def test_no_private_names_across_modules():
    assert not (v := check_private_names(PACKAGE)), _report("private names used across modules", v)


def test_imports_at_top_of_module():
    assert not (v := check_top_level_imports(PACKAGE)), _report("imports not at module top", v)


def test_no_long_functions():
    assert not (v := check_function_length(PACKAGE)), _report("functions too long", v)


def test_no_long_cpp_functions():
    assert not (found := check_cpp_function_length(PLUGIN_SOURCES)), _report("long C++ functions", found)


def test_one_module_per_command():
    assert not (v := check_cli_layout(PACKAGE)), _report("command-line layout", v)


def test_oracles_only_in_testing():
    assert not (v := check_oracles(PACKAGE)), _report("test oracles outside facetpot/testing.py", v)


def test_one_layout_loop():
    assert not (found := check_one_layout_loop(PACKAGE)), _report("block layout outside conv_paths", found)


def test_one_backend_setting():
    assert not (v := check_one_backend_setting(PACKAGE)), _report("FACETPOT_BACKEND read outside backend_choice", v)


def test_one_structure_check():
    assert not (v := check_one_definition(PACKAGE)), _report("a structure check defined twice", v)


def test_packages_in_layers():
    assert not (v := check_layers(PACKAGE)), _report("an import against the package's layers", v)


def test_benchmarks_record_results_one_way():
    assert not (v := check_results_written_once(BENCHMARKS)), _report("RESULTS.md written outside harness.py", v)
    assert not (v := check_results_match_records(BENCHMARKS)), _report("RESULTS.md is not its records' rendering", v)


def test_benchmarks_build_crystals_one_way():
    assert not (v := check_systems_built_once(BENCHMARKS)), _report("a crystal built outside systems.py", v)


def test_tests_mirror_the_package():
    assert not (v := check_tests_mirror(TESTS, PACKAGE)), _report("test folders that mirror nothing", v)


# Self-tests: each checker finds the violations planted in a tiny synthetic package, and only those.


def make_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "facetpot"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def where(violations: list[str]) -> list[str]:
    return [v.split(": ", 1)[0] for v in violations]


def test_selftest_cycles(tmp_path):
    root = make_package(
        tmp_path,
        {
            "__init__.py": '__version__ = "0"\n_EXPORTS = {"f": ".a"}\ndef __getattr__(n):\n'
            "    import importlib  # lazy: exports\n"
            "    return importlib.import_module(_EXPORTS[n])\n",
            "a.py": "from .b import g\nfrom . import __version__\n",
            "b.py": "def g():\n    from .a import f  # lazy: still a dependency\n",
            "c.py": "import facetpot.a\n",
        },
    )
    found = check_cycles(root)
    assert where(found) == ["facetpot/a.py:1", "facetpot/b.py:2"], found
    assert all("cycle {facetpot.a, facetpot.b}" in v for v in found), found
    (root / "b.py").write_text("def g():\n    pass\n")
    assert check_cycles(root) == []  # the root's importlib strings and __version__ make no cycle


def test_selftest_nn_layer(tmp_path):
    root = make_package(
        tmp_path,
        {
            "model.py": "",
            "nn/__init__.py": "from .gate import Gate\n",
            "nn/irreps.py": "import torch\n",
            "nn/gate.py": "from .irreps import x\nfrom ..model import FacetModel\nimport facetpot.nn.irreps\n",
        },
    )
    assert where(check_nn_layer(root)) == ["facetpot/nn/gate.py:2"]


def test_selftest_no_calculator(tmp_path):
    root = make_package(
        tmp_path,
        {
            "__init__.py": '_EXPORTS = {"FacetCalculator": ".inference.calculator"}\n',
            "inference/__init__.py": "",
            "inference/calculator.py": "",
            "training/__init__.py": "",
            "training/trainer.py": "from ..inference.calculator import FacetCalculator\n",
            "evaluate.py": "import facetpot.inference.calculator\nfrom . import FacetCalculator\n",
            "demo.py": "from .inference.calculator import FacetCalculator\n",
        },
    )  # demo may use the calculator
    assert where(check_no_calculator(root)) == [
        "facetpot/evaluate.py:1",
        "facetpot/evaluate.py:2",
        "facetpot/training/trainer.py:1",
    ]


def test_selftest_private_names(tmp_path):
    root = make_package(
        tmp_path,
        {
            "x.py": "_private = 1\ndef _f(): pass\n",
            "a.py": "from .x import _private\nfrom . import __version__, x\nx._f()\n",
            "b.py": "import facetpot.x as m\nimport facetpot\nimport torch\nm._f()\nfacetpot.x._f()\n"
            "torch._C\nm.__name__\n",
        },
    )
    assert where(check_private_names(root)) == [
        "facetpot/a.py:1",
        "facetpot/a.py:3",
        "facetpot/b.py:4",
        "facetpot/b.py:5",
    ]


def test_selftest_top_level_imports(tmp_path):
    root = make_package(
        tmp_path,
        {
            "model.py": "class FacetModel: pass\n",
            "a.py": """\
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from .model import FacetModel
def f():
    from .model import FacetModel
def g():
    from .model import FacetModel  # lazy: start-up
    import matplotlib.pyplot as plt
    from torch.fx.experimental import x
    import os
    from ase.io import (
        read,  # lazy: optional
    )
class C:
    import torch
""",
        },
    )
    assert where(check_top_level_imports(root)) == ["facetpot/a.py:5", "facetpot/a.py:10", "facetpot/a.py:15"]


def test_selftest_function_length(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(58))
    root = make_package(
        tmp_path,
        {
            "a.py": f"def ok():\n{body}    return 0\n",  # 60 lines
            "b.py": "class C:\n    def long(self):\n"
            + body.replace("    ", "        ")
            + "        pass\n        return 1\n",
        },
    )  # 61 lines
    assert where(check_function_length(root)) == ["facetpot/b.py:2"]


def test_selftest_cli_layout(tmp_path):
    command = "def add_to(sub):\n    pass\ndef run(args):\n    return 0\n"
    root = make_package(
        tmp_path,
        {
            "cli/__init__.py": "",
            "cli/options.py": "",
            "cli/train.py": command,
            "cli/md.py": "from .train import run\ndef add_to(sub):\n    pass\n",
            "cli/relax.py": command,
            "cli/main.py": "from . import md, train\nCOMMANDS = (train, md)\n",
        },
    )
    found = check_cli_layout(root)
    assert sorted(found) == sorted(
        [
            "facetpot/cli/md.py: defines no run()",
            "facetpot/cli/md.py:1: imports the command module train; shared code goes in cli/options.py",
            "facetpot/cli/main.py: COMMANDS lacks relax",
        ]
    ), found
    assert check_cli_layout(make_package(tmp_path / "flat", {"cli.py": ""})) == [
        "facetpot/cli: the command line is not a package"
    ]


def test_selftest_oracles(tmp_path):
    root = make_package(
        tmp_path,
        {
            "testing.py": "def conv_oracle(): pass\ndef reference_sum(): pass\n",
            "nn/__init__.py": "",
            "nn/conv.py": "def reference_block(): pass\ndef backward_in_torch(): pass\n",
            "model.py": "from .testing import conv_oracle\n",
        },
    )
    assert where(check_oracles(root)) == ["facetpot/model.py:1", "facetpot/nn/conv.py:1"]


def test_selftest_tests_mirror(tmp_path):
    root = make_package(tmp_path, {"nn/__init__.py": "", "io/__init__.py": ""})
    tests = tmp_path / "tests"
    for name in (
        "test_top.py",
        "nn/test_a.py",
        "io/test_b.py",
        "io/cpp/run.cpp",
        "utils/test_c.py",
        "nn/cpp/test_d.py",
    ):
        (tests / name).parent.mkdir(parents=True, exist_ok=True)
        (tests / name).write_text("")
    assert check_tests_mirror(tests, root) == [
        "tests/nn/cpp: a support folder holds tests",
        "tests/utils: no package facetpot/utils to mirror",
    ]


def test_selftest_one_layout_loop(tmp_path):
    root = make_package(
        tmp_path,
        {
            "nn/__init__.py": "",
            "nn/conv_paths.py": "def f(paths, weights, b):\n    paths.weight_offsets()\n"
            "    [k for k, p in enumerate(paths.paths) if p.block == b]\n    weights.narrow(1, 0, 4)\n",
            "nn/conv/__init__.py": "",
            "nn/conv/mine.py": "def g(paths, weights, b, x):\n    paths.weight_offsets()\n"
            "    [p for p in paths.paths if b == p.block]\n    weights.narrow(1, 0, 4)\n    x.narrow(1, 0, 4)\n"
            "    weights.narrow(0, 0, 4)\n",
        },
    )
    assert sorted(where(check_one_layout_loop(root))) == [
        "facetpot/nn/conv/mine.py:2",
        "facetpot/nn/conv/mine.py:3",
        "facetpot/nn/conv/mine.py:4",
    ]


def test_selftest_cpp_function_length(tmp_path):
    body = "\n".join(f"  x += {k};" for k in range(4))
    (tmp_path / "a.cpp").write_text(
        "namespace {\nstruct S {\n  static int f(int x)\n  {\n"
        + body
        + "\n    if (x) { x = 1; }\n    return x;\n  }\n};\n"
        '}  // namespace\n// g() { in a comment\nint A::g(const char *s = "{")\n{\n  auto l = [](int y) { return y; };\n'
        "  return l(1);\n}\n"
    )
    assert cpp_functions((tmp_path / "a.cpp").read_text()) == [("f", 4, 8), ("A::g", 16, 4)]
    assert check_cpp_function_length(tmp_path, limit=7) == ["a.cpp:4: f has 8 lines (at most 7); split it"]


def test_selftest_one_backend_setting(tmp_path):
    root = make_package(
        tmp_path,
        {
            "inference/__init__.py": '"""$FACETPOT_BACKEND is documented here."""\n',
            "inference/backend_choice.py": 'BACKEND_ENV = "FACETPOT_BACKEND"\n',
            "calculator.py": 'import os\n\n\ndef f():\n    """reads $FACETPOT_BACKEND"""\n'
            '    return os.environ.get("FACETPOT_BACKEND")\n',
        },
    )
    assert where(check_one_backend_setting(root)) == ["facetpot/calculator.py:6"]


def test_selftest_one_definition(tmp_path):
    root = make_package(
        tmp_path,
        {
            "structure/__init__.py": "",
            "structure/validation.py": "MIN_CELL_VOLUME = 1e-6\ndef has_volume(v):\n    return v >= MIN_CELL_VOLUME\n",
            "inference/__init__.py": "",
            "inference/ase_results.py": "from ase.stress import full_3x3_to_voigt_6_stress\n",
            "derivatives.py": "from .structure import validation\nfrom .structure.validation import has_volume\n"
            "ok = 1.0 > validation.MIN_CELL_VOLUME\n",
            "calculator.py": "from ase.stress import full_3x3_to_voigt_6_stress as v6\n",
        },
    )
    assert sorted(where(check_one_definition(root))) == ["facetpot/calculator.py:1", "facetpot/derivatives.py:3"]


def test_selftest_layers(tmp_path):
    root = make_package(
        tmp_path,
        {
            "nn/__init__.py": "",
            "graph.py": "",
            "model.py": "from . import graph\n",
            "io.py": "from . import model\n",
            "extra.py": "",
            "low.py": "from . import model\n",
            "pretrained.py": "from . import io\n",
        },
    )
    layers = (("nn",), ("graph", "low"), ("model", "io", "pretrained"))
    assert sorted(check_layers(root, layers)) == [
        "facetpot/extra: not in LAYERS; give it a layer",
        "facetpot/low.py:1: low (layer 1) imports model (layer 2), a higher layer",
    ]
    (root / "model.py").write_text("from . import graph\nfrom . import io\n")
    assert [v for v in check_layers(root, layers) if "each other" in v] == [
        "facetpot/io.py:1: io and model import each other (facetpot/model.py:2)"
    ]


def test_selftest_systems_built_once(tmp_path):
    (tmp_path / "systems.py").write_text('from ase.build import bulk\nsi = bulk("Si", "diamond")\n')
    (tmp_path / "a.py").write_text('W = r"""\natoms = bulk(\'Si\', cubic=True)\n"""\ncu = bulk("Cu", "fcc")\n')
    assert where(check_systems_built_once(tmp_path)) == [f"{tmp_path.name}/a.py:2"]


def test_selftest_results_match_records(tmp_path):
    shutil.copy(BENCHMARKS / "harness.py", tmp_path / "harness.py")
    (tmp_path / "records").mkdir()
    record = {"script": "speed", "command": "python benchmarks/speed.py", "date": "2026-12-07T01:00:00"}
    record.update(commit="abc1234", markdown="\n### Speed\n\n| a |\n")
    (tmp_path / "records" / "2026-12-07-010000-speed.json").write_text(json.dumps(record))
    assert check_results_match_records(tmp_path)[0].startswith(f"{tmp_path.name}/RESULTS.md:1: None ")
    subprocess.run([sys.executable, str(tmp_path / "harness.py"), "render"], check=True)
    assert "| a |" in (tmp_path / "RESULTS.md").read_text() and not check_results_match_records(tmp_path)
    (tmp_path / "RESULTS.md").write_text((tmp_path / "RESULTS.md").read_text().replace("| a |", "| b |"))
    assert check_results_match_records(tmp_path) and check_results_match_records(tmp_path)[0].count("| b |") == 1


def test_selftest_results_written_once(tmp_path):
    (tmp_path / "harness.py").write_text('open("RESULTS.md", "a")\n')
    (tmp_path / "a.py").write_text(
        'from pathlib import Path\nHERE = Path(".")\nwith open(HERE / "RESULTS.md", "a") as f:\n'
        '    f.write("x")\n(HERE / "RESULTS.md").write_text("y")\nopen("other.md")\n'
    )
    assert sorted(w.rsplit(":", 1)[1] for w in where(check_results_written_once(tmp_path))) == ["3", "5"]
