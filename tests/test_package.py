"""Packaging contracts: light import, CLI entry points, environment.yml consistent with pyproject."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_import_molgan_is_light():
    code = ("import sys, molgan; molgan.__version__; "
            "heavy = [m for m in ('rdkit', 'pandas', 'torch_geometric') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_environment_yml_lists_the_pyproject_dependencies_at_constraint_versions():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = {_name(d) for d in pyproject["project"]["dependencies"]}
    deps |= {_name(d) for d in pyproject["project"]["optional-dependencies"]["test"]}
    env = (ROOT / "environment.yml").read_text()
    pins = dict(re.findall(r"^\s*-\s*([A-Za-z0-9_.-]+)\s*==?\s*([0-9][^\s#]*)", env, re.M))
    pins = {_name(k): v for k, v in pins.items() if k != "python"}
    assert deps <= set(pins), f"missing from environment.yml: {sorted(deps - set(pins))}"
    constraints = dict(
        re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "constraints.txt").read_text(), re.M))
    constraints = {_name(k): v for k, v in constraints.items()}

    def norm(version: str) -> str:  # conda-forge writes 2026.09.1 where PyPI writes 2026.9.1
        return ".".join(str(int(p)) if p.isdigit() else p for p in version.split("."))

    for name in deps:
        assert name in constraints, f"{name} not pinned in constraints.txt"
        assert norm(pins[name]) == norm(constraints[name]), name


def test_python_dash_m_molgan_shows_help():
    out = subprocess.run([sys.executable, "-m", "molgan", "--help"], capture_output=True,
                         text=True, check=True)
    assert "prepare" in out.stdout


def test_sampling_does_not_import_the_trainer():
    code = ("import sys; from molgan.sample import Sampler; "
            "from molgan.checkpoint import pretrained_path; "
            "Sampler.from_checkpoint(pretrained_path('qm9')).sample(10); "
            "assert 'molgan.train' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_development_process_words_in_the_repository():
    pattern = re.compile(r"\bstops?[ -]?[0-9]+|\bthis\s+session\b|\bissues?\s#?[0-9]+|\bsince\sstop",
                         re.I)
    roots = ["molgan", "scripts", "tests", "data", "docs"]
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for root in roots:
        files += [p for p in (ROOT / root).rglob("*") if p.is_file()
                  and p.suffix in (".py", ".md", ".toml", ".json", ".jsonl", ".smi", ".txt")]
    hits = [f"{p.relative_to(ROOT)}:{n}" for p in files if p.exists()
            for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
            if pattern.search(line)]
    assert not hits, hits[:20]
