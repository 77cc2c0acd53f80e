"""The project's layout: imports flow one way through the layers, and every module stays small.

Each layer is a folder (plus the top-level scripts of the card that belong to it), listed top
to bottom; a module may import modules of its own layer or of the layers below it, and the
shared helpers in ``common/`` from anywhere. A new module joins the layer of the folder it is
put in, so the folders themselves are the architecture.
"""

import ast
import glob
import os

import pytest

from conftest import ROOT

LAYERS = [  # top to bottom: (folder, top-level modules of the same layer)
    ("experiment", {"Training"}),
    ("evaluation", {"Evaluate"}),
    ("Models", set()),
    ("pipeline", set()),
    ("databases", {"Datasets"}),
    ("audio", {"Input", "Sample"}),  # the signal: audio files, spectrograms, song metadata
]
SHARED = "common"
MAX_LINES = 500


def project_modules():
    """``{dotted module name: path}`` of every module of the project (tests and bench aside)."""
    modules = {os.path.splitext(os.path.basename(path))[0]: path for path in glob.glob(os.path.join(ROOT, "*.py"))}
    for folder in [layer for layer, _ in LAYERS if layer] + [SHARED]:
        for path in glob.glob(os.path.join(ROOT, folder, "*.py")):
            modules[f"{folder}.{os.path.splitext(os.path.basename(path))[0]}"] = path
    return modules


def imports_of(path, modules):
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in modules:
                found.add(node.module)
            else:
                found.update(
                    f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in modules
                )
    return found


@pytest.fixture(scope="module")
def graph():
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def layer_of(module):
    """The depth of ``module``'s layer (0 = top), or None for the shared helpers and unknowns."""
    folder = module.split(".")[0] if "." in module else None
    for depth, (layer_folder, top_level) in enumerate(LAYERS):
        if (folder is not None and folder == layer_folder) or (folder is None and module in top_level):
            return depth
    return None


def is_shared(module):
    return module.startswith(SHARED + ".")


def test_every_module_has_a_layer(graph):
    assert sorted(name for name in graph if layer_of(name) is None and not is_shared(name)) == []


def test_the_card_keeps_its_top_level():
    top_level = {os.path.splitext(os.path.basename(path))[0] for path in glob.glob(os.path.join(ROOT, "*.py"))}
    assert top_level == {"Training", "Sample", "Input", "Datasets", "Evaluate"}


def test_imports_never_reach_upwards(graph):
    upward = [
        (module, imported)
        for module, imports in graph.items()
        for imported in imports
        if not is_shared(imported) and not is_shared(module) and layer_of(imported) < layer_of(module)
    ]
    shared_up = [
        (module, imported)
        for module in graph
        if is_shared(module)
        for imported in graph[module]
        if not is_shared(imported)
    ]
    assert upward == [] and shared_up == []


def test_there_are_no_import_cycles(graph):
    done, active = set(), []

    def visit(module):
        assert module not in active, f"import cycle: {' -> '.join(active[active.index(module) :] + [module])}"
        if module in done:
            return
        active.append(module)
        for imported in sorted(graph[module]):
            visit(imported)
        active.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_no_module_is_over_the_size_limit():
    paths = list(project_modules().values()) + glob.glob(os.path.join(ROOT, "bench", "*.py"))
    sizes = {os.path.relpath(path, ROOT): sum(1 for _ in open(path, encoding="utf-8")) for path in paths}
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}


def unannotated_public_functions(path):
    """``[name]`` of the public functions and methods in ``path`` that lack a parameter or return hint
    (``self``/``cls`` and ``__init__``'s return aside); nested functions are not public."""
    missing = []

    def visit(node, public):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, public and not child.name.startswith("_"))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not public or (child.name.startswith("_") and child.name != "__init__"):
                    continue
                arguments = child.args.posonlyargs + child.args.args + child.args.kwonlyargs
                if isinstance(node, ast.ClassDef) and arguments and arguments[0].arg in ("self", "cls"):
                    arguments = arguments[1:]
                arguments += [extra for extra in (child.args.vararg, child.args.kwarg) if extra]
                if any(argument.annotation is None for argument in arguments) or (
                    child.returns is None and child.name != "__init__"
                ):
                    missing.append(child.name)

    visit(ast.parse(open(path, encoding="utf-8").read()), True)
    return missing


def test_every_public_function_has_type_hints():
    missing = {
        os.path.relpath(path, ROOT): names
        for path in project_modules().values()
        if (names := unannotated_public_functions(path))
    }
    assert missing == {}
