"""The project's layout: imports flow one way through the layers, and every module stays small.

The layers are the README's table ("Project layout"); a module may import modules of its own
layer or of the layers below it, and the shared helpers from anywhere.
"""

import ast
import glob
import os

import pytest

from conftest import ROOT

LAYERS = [  # top to bottom
    ("experiment", {"Training", "TrainingData", "Summaries"}),
    ("evaluation", {"Evaluate", "Separation", "Metrics", "Results", "Comparison"}),
    ("nets", {"Models.TrainingGraph", "Models.Unet", "Models.WGAN_Critic", "Models.Layers", "Models.__init__"}),
    ("pipeline", {"BatchGenerators", "ReaderPool", "Sections", "AudioCache"}),
    ("data", {"Datasets", "DatasetXML", "DatasetLayouts", "DerivedAudio", "DemoDatabase", "DemoSongs",
              "DemoSynthesis", "SharedSongs"}),
    ("signal", {"Input", "Sample"}),
]
SHARED = {"Utils", "Checkpoints", "Precision"}
MAX_LINES = 650


def project_modules():
    paths = glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "Models", "*.py"))
    return {("Models." if os.path.basename(os.path.dirname(path)) == "Models" else "")
            + os.path.splitext(os.path.basename(path))[0]: path for path in paths}


def imports_of(path, modules):
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in modules:
                found.add(node.module)
            elif node.module == "Models":
                found.update("Models." + alias.name for alias in node.names)
    return found


@pytest.fixture(scope="module")
def graph():
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def layer_of(module):
    for depth, (_, members) in enumerate(LAYERS):
        if module in members:
            return depth
    return None


def test_every_module_has_a_layer(graph):
    assert sorted(name for name in graph if layer_of(name) is None and name not in SHARED) == []


def test_imports_never_reach_upwards(graph):
    upward = [(module, imported) for module, imports in graph.items() for imported in imports
              if imported not in SHARED and module not in SHARED and layer_of(imported) < layer_of(module)]
    shared_up = [(module, imported) for module in SHARED for imported in graph[module] if imported not in SHARED]
    assert upward == [] and shared_up == []


def test_there_are_no_import_cycles(graph):
    done, active = set(), []

    def visit(module):
        assert module not in active, f"import cycle: {' -> '.join(active[active.index(module):] + [module])}"
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
