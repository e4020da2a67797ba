"""The shape of the code: a star, not a web (STYLE.md), and wings inside the gateway."""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAVES = ("policies", "connectors", "audit")
OWN = {"gateway", *LEAVES}
# The wings that face the outside world; everything else in gateway/ is the core.
EDGES = ("http", "cli", "demo", "flight")
WEB_FRAMEWORKS = {"fastapi", "starlette"}
# The two small distributions beside the server: the audit log's proof checks, shared
# by audit/ and the partners' client, and the client itself.
PROOFS = ROOT / "proofs" / "src" / "kiteline_proofs"
CLIENT = ROOT / "client" / "src" / "kiteline_client"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imported_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included):
    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (``c`` may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(root: Path, package: str) -> Iterator[Path]:
    yield from sorted((root / package).rglob("*.py"))


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (a package's own ``__init__``
    importing its submodules counts; the implicit import of a parent does not)."""
    paths = {module_name(p, root): p for package in packages for p in sources(root, package)}
    return {name: (imported_modules(path) & paths.keys()) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def core_sources(root: Path) -> Iterator[Path]:
    for path in sources(root, "gateway"):
        if path.relative_to(root / "gateway").parts[0] not in EDGES:
            yield path


def core_reaching_edges(root: Path) -> list[str]:
    edges = tuple(f"gateway.{wing}" for wing in EDGES)
    return [
        f"{path.relative_to(root)} imports {module}"
        for path in core_sources(root)
        for module in sorted(imported_modules(path))
        if module in edges or module.startswith(tuple(e + "." for e in edges))
    ]


def web_outside_http(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)} imports {sorted(imported_packages(path) & WEB_FRAMEWORKS)}"
        for package in sorted(OWN)
        for path in sources(root, package)
        if imported_packages(path) & WEB_FRAMEWORKS
        and not path.relative_to(root).parts[:2] == ("gateway", "http")
    ]


def leaves_behind_faces(root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)} imports {module}"
        for path in sources(root, "gateway")
        for module in sorted(imported_modules(path))
        if module.split(".")[0] in LEAVES
        and module.count(".") >= 1
        # ``from connectors import Scan`` also yields "connectors.Scan": a name of the face
        and module.split(".")[1] not in face_names(root, module.split(".")[0])
    ]


def face_names(root: Path, package: str) -> set[str]:
    tree = ast.parse((root / package / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


@pytest.mark.parametrize("package", LEAVES)
def test_leaf_packages_import_only_themselves(package: str):
    for path in (ROOT / package).rglob("*.py"):
        others = (imported_packages(path) & (OWN | {"kiteline_client"})) - {package}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"


def test_the_shared_proofs_import_only_the_standard_library_and_cryptography():
    files = list(PROOFS.rglob("*.py"))
    assert {p.name for p in files} >= {"merkle.py", "checkpoints.py", "errors.py"}
    for path in files:
        extra = imported_packages(path) - STDLIB - {"cryptography", "kiteline_proofs"}
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_the_client_imports_none_of_the_servers_packages():
    # pandas and polars are optional extras, imported where a frame is asked for.
    allowed = STDLIB | {"httpx", "pyarrow", "kiteline_client", "kiteline_proofs", "polars"}
    files = list(CLIENT.rglob("*.py"))
    assert files
    for path in files:
        extra = imported_packages(path) - allowed
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_the_proof_check_has_one_implementation():
    # audit.merkle and audit.checkpoints re-export kiteline_proofs; no second copy.
    import kiteline_proofs.checkpoints
    import kiteline_proofs.merkle

    import audit.checkpoints
    import audit.merkle

    assert audit.merkle.verify_inclusion is kiteline_proofs.merkle.verify_inclusion
    assert audit.checkpoints.Verifier is kiteline_proofs.checkpoints.Verifier
    for module in ("merkle", "checkpoints"):
        source = (ROOT / "audit" / f"{module}.py").read_text(encoding="utf-8")
        assert "def " not in source and "class " not in source


def test_no_print_outside_the_cli():
    roots = [ROOT / package for package in OWN] + [PROOFS, CLIENT]
    for root in roots:
        for path in root.rglob("*.py"):
            calls = [
                n
                for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"
            ]
            assert not calls, f"print() in {path.relative_to(ROOT)}"


def test_the_core_never_imports_the_http_cli_or_demo_wings():
    assert not core_reaching_edges(ROOT)


def test_only_the_http_wing_imports_the_web_framework():
    assert not web_outside_http(ROOT)


@pytest.mark.parametrize("package", LEAVES)
def test_each_leaf_package_has_a_public_face(package: str):
    names = face_names(ROOT, package)
    assert names, f"{package}/__init__.py has no __all__"
    face = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    bound = {
        alias.asname or alias.name
        for node in ast.walk(face)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert names <= bound, f"{package}.__all__ names what it does not import"


def test_the_gateway_reaches_the_leaf_packages_only_through_their_faces():
    assert not leaves_behind_faces(ROOT)


def test_no_import_cycles():
    assert not cycles(import_graph(ROOT, ("gateway", *LEAVES)))


# Scans that release nothing: they compare a leak with the source. (The scan counting
# k-anonymity classes is built by the plan: it must see the grant's row filters.)
SCANS_RELEASING_NOTHING = {"gateway/auditing/leak_tracing.py"}
THE_SCAN_BUILDER = "gateway/read/plan.py"


def scans_built_outside_the_plan(root: Path) -> list[str]:
    """Modules of the gateway that build a connector ``Scan`` other than ``scan_of``."""
    found = []
    for path in sources(root, "gateway"):
        name = path.relative_to(root).as_posix()
        if name == THE_SCAN_BUILDER or name in SCANS_RELEASING_NOTHING:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Scan":
                found.append(f"{name}:{node.lineno}")
    return found


def test_released_data_is_scanned_only_from_the_decided_plan():
    assert not scans_built_outside_the_plan(ROOT)


# Domain errors name their kind of problem; only the HTTP wing knows its status.
HTTP_STATUS_NAMES = {"status", "status_code", "http_status"}


def error_classes(tree: ast.AST, known: set[str]) -> list[ast.ClassDef]:
    """Classes that derive from an exception: a base named ``*Error``/``*Exception`` or
    one of ``known`` (the error classes found so far)."""

    def base_name(node: ast.expr) -> str:
        return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")

    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(
            (name := base_name(b)).endswith(("Error", "Exception")) or name in known
            for b in node.bases
        )
    ]


def assigned_names(cls: ast.ClassDef) -> set[str]:
    """What a class assigns: in its body (``status = 403``, ``status, slug = ...``) and
    on ``self`` in its methods (``self.status = 403``)."""
    found: set[str] = set()
    for node in ast.walk(cls):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Name):
                    found.add(part.id)
                elif isinstance(part, ast.Attribute) and getattr(part.value, "id", "") == "self":
                    found.add(part.attr)
    return found


def domain_errors_with_http_status(root: Path) -> list[str]:
    paths = [
        path
        for package in sorted(OWN)
        for path in sources(root, package)
        if path.relative_to(root).parts[:2] != ("gateway", "http")
    ]
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in paths}
    known: set[str] = set()
    while True:  # error classes derive from each other across modules
        found = {c.name for tree in trees.values() for c in error_classes(tree, known)}
        if found <= known:
            break
        known |= found
    return [
        f"{path.relative_to(root)}:{cls.lineno} {cls.name} carries {name}"
        for path, tree in trees.items()
        for cls in error_classes(tree, known)
        for name in sorted(assigned_names(cls) & HTTP_STATUS_NAMES)
    ]


def test_no_domain_error_carries_an_http_status():
    assert not domain_errors_with_http_status(ROOT)


def test_every_kind_of_gateway_error_has_its_answer_in_the_http_wing():
    import gateway.errors
    import gateway.http.edge  # noqa: F401  (its MethodNotAllowed)
    from gateway.http.problems import PROBLEMS

    def kinds(cls: type) -> set[type]:
        return {cls} | {k for sub in cls.__subclasses__() for k in kinds(sub)}

    missing = {
        cls.__name__
        for cls in kinds(gateway.errors.GatewayError)
        if cls.__module__ != "gateway.http.problems" and cls.slug not in PROBLEMS
    }
    assert not missing


# The rules above must be able to fail: each is run once on a tree that breaks it.


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in OWN:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


BROKEN_TREES = [
    pytest.param(
        lambda root: cycles(import_graph(root, ("gateway",))),
        {
            "gateway/a.py": "from gateway.b import thing\n",
            "gateway/b.py": "def thing():\n    from gateway import a\n",
            "gateway/c.py": "import gateway.a\n",
        },
        [["gateway.a", "gateway.b"]],
        id="a cycle hidden in a function",
    ),
    pytest.param(
        core_reaching_edges,
        {
            "gateway/read/plan.py": "def f():\n    from gateway.http.app import create_app\n",
            "gateway/http/app.py": "from gateway.read import plan\n",
            "gateway/cli/main.py": "from gateway.http.app import create_app\n",
        },
        [
            "gateway/read/plan.py imports gateway.http.app",
            "gateway/read/plan.py imports gateway.http.app.create_app",
        ],
        id="a core module importing the http wing",
    ),
    pytest.param(
        web_outside_http,
        {
            "gateway/http/app.py": "import fastapi\n",
            "gateway/errors.py": "from starlette.responses import Response\n",
        },
        ["gateway/errors.py imports ['starlette']"],
        id="the web framework outside the http wing",
    ),
    pytest.param(
        leaves_behind_faces,
        {
            "connectors/__init__.py": "from connectors.base import Scan\n__all__ = ['Scan']\n",
            "gateway/read/a.py": "from connectors import Scan\n",
            "gateway/read/b.py": "from connectors.base import Scan\n",
        },
        [
            "gateway/read/b.py imports connectors.base",
            "gateway/read/b.py imports connectors.base.Scan",
        ],
        id="a leaf reached behind its face",
    ),
    pytest.param(
        scans_built_outside_the_plan,
        {
            "gateway/read/plan.py": "def scan_of(plan):\n    return Scan(columns=())\n",
            "gateway/read/export.py": "def f():\n    return Scan(columns=('a',))\n",
        },
        ["gateway/read/export.py:2"],
        id="a scan built outside the plan",
    ),
    pytest.param(
        lambda root: sorted(domain_errors_with_http_status(root)),
        {
            "gateway/errors.py": (
                "class GatewayError(Exception):\n    slug = 'internal-error'\n"
                "class Gone(GatewayError):\n    status, slug = 410, 'gone'\n"
            ),
            "gateway/read/errors.py": (
                "from gateway.errors import Gone\n"
                "class Expired(Gone):\n"
                "    def __init__(self):\n        self.status_code = 410\n"
            ),
            "connectors/base.py": "class ConnectorError(Exception):\n    http_status = 502\n",
            "gateway/http/edge.py": "class MethodNotAllowed(GatewayError):\n    status = 405\n",
        },
        [
            "connectors/base.py:1 ConnectorError carries http_status",
            "gateway/errors.py:3 Gone carries status",
            "gateway/read/errors.py:2 Expired carries status_code",
        ],
        id="a domain error carrying an http status",
    ),
]


@pytest.mark.parametrize(("rule", "files", "found"), BROKEN_TREES)
def test_a_tree_that_breaks_a_rule_is_found(
    tmp_path: Path, rule: Callable[[Path], list[Any]], files: dict[str, str], found: list[Any]
):
    assert rule(_tree(tmp_path, files)) == found
