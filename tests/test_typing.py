"""The type information the package ships: the compiled module's stub
matches the compiled module, and mypy passes on the package."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pplx_kernels import _core

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "pplx_kernels"


def _stub_functions() -> dict:
    """name -> [parameter names] of every function in _core.pyi (an
    @overload'ed function once); positional-only ones as argN, pybind11's
    name for a parameter bound without py::arg."""
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    return {node.name: [f"arg{i}" for i in range(len(node.args.posonlyargs))] + [a.arg for a in node.args.args]
            for node in tree.body if isinstance(node, ast.FunctionDef)}


def _stub_names() -> set:
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    names = set(_stub_functions())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    return names


def test_stub_names_every_binding():
    compiled = {n for n in dir(_core) if not n.startswith("__")} | {"__compiled_isas__"}
    assert _stub_names() == compiled


def test_stub_parameters_match_the_bindings():
    for name, params in _stub_functions().items():
        # pybind11 docstrings start with the signature: name(a: type, b: type) -> type
        signature = getattr(_core, name).__doc__.splitlines()[0]
        bound = re.findall(r"(\w+):", signature[signature.index("(") + 1:signature.rindex(")")])
        assert params == bound, f"{name}: stub {params}, binding {bound}"


def test_mypy_passes_on_the_package():
    # A source checkout (the stub and pyproject.toml's [tool.mypy] beside it).
    root = PACKAGE.parents[1]
    if not (root / "pyproject.toml").is_file():
        pytest.skip("needs the source checkout")
    env = dict(os.environ, MYPY_CACHE_DIR=os.path.join(os.environ.get("TMPDIR", "/tmp"), "pplx-mypy-cache"))
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(root / "pyproject.toml")],
                          cwd=root, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
