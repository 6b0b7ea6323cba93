"""The package's modules import each other without cycles.

Every `import` counts, those inside functions too: an import moved into a
function hides a cycle from Python but not from a reader, who still has to
climb back up the package to follow the code.
"""

import ast
import os

import tfiqa

PACKAGE = os.path.dirname(os.path.abspath(tfiqa.__file__))


def module_files():
    files = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, os.path.dirname(PACKAGE))
                module = relative[: -len(".py")].replace(os.sep, ".")
                files[module.removesuffix(".__init__")] = path
    return files


def imported_modules(path, module, modules):
    """tfiqa modules that `module` imports anywhere in its file. `from X
    import y` counts as importing X.y when that is a module, else X; a
    package's own `__init__` (run first by any import below it) is not an
    edge."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                found.add(name)
    return found


def import_cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def package_graph():
    modules = module_files()
    return {m: imported_modules(p, m, modules) for m, p in modules.items()}


def test_the_graph_sees_imports_inside_functions():
    graph = package_graph()
    # tfiqa.cli.predict imports the inference door inside its command.
    assert "tfiqa.inference.loaders" in graph["tfiqa.cli.predict"]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]
    ]


def test_no_import_cycle_in_the_package():
    cycles = import_cycles(package_graph())
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_reading_models_does_not_import_export():
    graph = package_graph()
    readers = [m for m in graph if m.startswith("tfiqa.inference")]
    for module in readers:
        assert not any(m.startswith("tfiqa.export") for m in graph[module]), module
