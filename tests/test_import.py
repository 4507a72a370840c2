import subprocess
import sys


def test_import_is_light():
    """`import mobilefer` loads neither torch nor onnxruntime nor a model."""
    code = (
        "import sys, mobilefer; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'torchvision') if m in sys.modules]; "
        "print(','.join(heavy)); print(len(mobilefer.EMOTIONS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, n = out.stdout.splitlines()
    assert heavy == ""
    assert n == "7"


def test_public_api():
    import mobilefer

    assert mobilefer.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    for name in mobilefer.__all__:
        assert getattr(mobilefer, name) is not None


def test_the_import_graph_has_no_cycle():
    """Every import between mobilefer's modules, lazy ones and those for type checkers only
    included, points one way."""
    import ast
    from pathlib import Path

    import mobilefer

    root = Path(mobilefer.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        name = name.removesuffix(".__init__")
        targets = graph.setdefault(name, set())
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.removesuffix(".__init__").rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
                targets.add(module)
                targets.update(f"{module}.{a.name}" for a in node.names)
    graph = {
        k: {t for t in v if t in graph and t != k and t != "mobilefer"} for k, v in graph.items()
    }

    def visit(node, trail):
        if node in trail:
            raise AssertionError(" -> ".join([*trail[trail.index(node) :], node]))
        for nxt in graph[node]:
            visit(nxt, [*trail, node])

    for node in graph:
        visit(node, [])


def test_no_module_is_over_400_lines():
    """One room per job: a module past 400 lines holds two (study.py did, and was split)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src" / "mobilefer"
    long = {
        str(p.relative_to(root)): n
        for p in root.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long
