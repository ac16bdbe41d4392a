"""The package's layers: no import cycles (imports inside functions count), and the reader of results
(skipvae.report) imports no runner (train, sweep, runner, cli), directly or through another module (the experiments'
declarations it reads included) or a parent package (importing skipvae.report.x executes skipvae/report/__init__.py
first)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "skipvae"
RUNNERS = {"skipvae.train", "skipvae.sweep", "skipvae.runner", "skipvae.cli"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: the skipvae modules it imports anywhere in its body}, each import resolved to the longest module
    name that exists (`from skipvae.report import views` is skipvae.report.views)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:  # each imported name: its own module, else the module that defines it
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of `graph` (one path per cycle found by a depth-first search)."""
    found, state, stack = [], {}, []

    def visit(m):
        state[m], _ = "open", stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        state[m], _ = "done", stack.pop()

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_the_graph_records_every_name_of_one_import(tmp_path):
    (tmp_path / "pkg").mkdir()
    files = {"__init__.py": "", "a.py": "", "b.py": "", "c.py": "from pkg import a, b\nfrom pkg.a import x\n"}
    for f, text in files.items():
        (tmp_path / "pkg" / f).write_text(text)
    assert import_graph(tmp_path / "pkg")["pkg.c"] == {"pkg.a", "pkg.b"}


def test_the_cycle_finder_finds_a_known_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert "skipvae.names" in graph["skipvae.params"]  # the graph sees module-level imports ...
    assert "skipvae.train" in graph["skipvae.runner"]  # ... and imports inside functions
    assert cycles(graph) == []


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others (imports inside functions count)."""
    seen, todo = set(), [start]
    while todo:
        for n in graph[todo.pop()] - seen:
            seen.add(n)
            todo.append(n)
    return seen


def with_parents(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """`graph` with an edge from each module to each of its parent packages in the graph (importing a.b.c executes
    a/__init__.py and a/b/__init__.py first). For what a module executes, not for cycles: a package's __init__ may
    import its own modules."""
    def parents(m):
        parts = m.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))} & set(graph)

    return {m: targets | parents(m) for m, targets in graph.items()}


def runners_reached(graph: dict[str, set[str]], readers: list[str], runners: set[str]) -> dict[str, list[str]]:
    """{reader: the runners it executes, directly, through other modules or through parent packages}, for each
    reader that executes any."""
    found = {m: sorted(reachable(with_parents(graph), m) & runners) for m in readers}
    return {m: hit for m, hit in found.items() if hit}


def test_reachable_follows_imports_through_other_modules():
    assert reachable({"a": {"b"}, "b": {"c"}, "c": set(), "d": {"a"}}, "a") == {"b", "c"}


def test_a_runner_reached_through_a_parent_package_is_caught(tmp_path):
    files = {"__init__.py": "", "runner.py": "", "report/__init__.py": "from pkg import runner\n", "report/x.py": "",
             "reader.py": "from pkg.report import x\n", "clean.py": "import pkg.other\n", "other.py": ""}
    for f, text in files.items():
        (tmp_path / "pkg" / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / f).write_text(text)
    graph = import_graph(tmp_path / "pkg")
    assert graph["pkg.reader"] == {"pkg.report.x"} and graph["pkg.report.x"] == set()  # no import names the runner
    assert "pkg.runner" not in reachable(graph, "pkg.reader")  # ... so the imports alone miss it
    assert with_parents(graph)["pkg.report.x"] == {"pkg", "pkg.report"}
    assert runners_reached(graph, ["pkg.reader", "pkg.clean"], {"pkg.runner"}) == {"pkg.reader": ["pkg.runner"]}


def test_the_reader_of_results_imports_no_runner_directly_or_through_another_module():
    graph = import_graph()
    readers = [m for m in graph if m == "skipvae.report" or m.startswith("skipvae.report.")]
    assert len(readers) >= 7
    assert "skipvae.experiments.mnist" in reachable(graph, "skipvae.report.store")  # it reads the declarations
    assert "skipvae.report" in reachable(with_parents(graph), "skipvae.report.stats")  # and its package's __init__
    assert runners_reached(graph, readers, RUNNERS) == {}
