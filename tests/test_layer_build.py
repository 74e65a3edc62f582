"""The layer's build (layers/orderbridge/Makefile, what `sam build` runs) ships compiled bytecode.

Lambda's /opt is read-only: a layer without .pyc files compiles every module it imports at every
cold start. The build compiles with an interpreter of the runtime's version, as unchecked-hash
.pyc files (Lambda's zip keeps modification times only to 2 seconds, so timestamp .pyc files would
be judged stale). These tests run the real Makefile target: once for this machine's Python (host
wheels, so the result can be imported here), and once for the template's python3.13 when a
Python 3.13 is on this machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "orderbridge"
HOST_VERSION = "{}.{}".format(*sys.version_info[:2])
#: what the python3.13 runtime ships, removed by the build (the Makefile's RUNTIME_PROVIDED_MODULES)
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3")


def make(artifacts: Path, *variables: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(LAYER), "build-OrderbridgeLayer", f"ARTIFACTS_DIR={artifacts}", *variables],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pyc_flags(path: Path) -> int:
    """PEP 552 header flags: bit 0 hash-based, bit 1 check the source."""
    return int.from_bytes(path.read_bytes()[4:8], "little")


def sources_without_bytecode(python: Path, cache_tag: str) -> list[Path]:
    missing = []
    for source in python.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{cache_tag}.pyc"
        if not pyc.exists():
            missing.append(source)
    return missing


@pytest.fixture(scope="module")
def host_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer built by its Makefile for this machine's Python (wheels and bytecode)."""
    artifacts = tmp_path_factory.mktemp("layer")
    proc = make(
        artifacts,
        f"PYTHON={sys.executable}",
        "PIP_PLATFORM=",
        f"TARGET_VERSION={HOST_VERSION}",
        f"TARGET_PYTHON={sys.executable}",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "compiling bytecode" in proc.stdout
    return artifacts / "python"


def test_every_module_of_the_layer_has_unchecked_hash_bytecode(host_layer: Path) -> None:
    tag = sys.implementation.cache_tag
    assert (host_layer / "orderbridge" / "__init__.py").exists()
    assert sources_without_bytecode(host_layer, tag) == []
    ours = sorted((host_layer / "orderbridge").rglob(f"*.{tag}.pyc"))
    assert len(ours) >= len(list((LAYER / "orderbridge").rglob("*.py")))
    flags = {pyc_flags(p) for p in host_layer.rglob(f"*.{tag}.pyc")}
    assert flags == {0b01}, f"every .pyc unchecked-hash (flags 1), found {flags}"


def test_the_runtimes_own_packages_are_left_out(host_layer: Path) -> None:
    present = [name for name in RUNTIME_PROVIDED if (host_layer / name).exists()]
    assert present == [], f"the python3.13 runtime ships these; the layer must not shadow them: {present}"


def test_data_no_code_reads_is_left_out_and_what_is_read_still_works(
    host_layer: Path, tmp_path: Path
) -> None:
    """pycountry's translations were half the layer (22 MB); orderbridge reads codes and English
    names only, which still resolve from the built layer."""
    assert (host_layer / "pycountry").is_dir() and not (host_layer / "pycountry" / "locales").exists()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pycountry; print(pycountry.countries.lookup('United States').alpha_2, "
            "pycountry.countries.get(alpha_2='DE').name)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(host_layer)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["US", "Germany"]


def test_imports_from_the_built_layer_use_its_bytecode(host_layer: Path, tmp_path: Path) -> None:
    """As on Lambda: the layer first on the path, nothing written, and source modification times
    unlike those the .pyc files were made from (the zip round trip): every layer module loads
    from its .pyc, none is compiled from source."""
    for source in host_layer.rglob("*.py"):
        os.utime(source, (1_000_000_000, 1_000_000_000))
    env = {
        **os.environ,
        "PYTHONPATH": str(host_layer),
        "PYTHONDONTWRITEBYTECODE": "1",
        "POWERTOOLS_SERVICE_NAME": "orderbridge",
    }
    modules = "orderbridge.intake, orderbridge.dispatch, orderbridge.models, pydantic, aws_lambda_powertools"
    proc = subprocess.run(
        [sys.executable, "-v", "-c", f"import {modules}; import orderbridge; print(orderbridge.__file__)"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith(str(host_layer)), "the layer's package, not the checkout's"
    layer = re.escape(str(host_layer))
    from_source = re.findall(rf"^# code object from ({layer}\S*\.py)$", proc.stderr, re.M)
    from_bytecode = re.findall(rf"^# code object from '({layer}\S*\.pyc)'$", proc.stderr, re.M)
    assert from_source == [], f"compiled at import: {from_source[:5]}"
    assert len(from_bytecode) > 50


def test_without_a_python_of_the_runtimes_version_the_build_stops_before_installing(
    tmp_path: Path,
) -> None:
    """`sam build` shows a make target's stderr only when it fails, and caches what it built: a
    warning would go unseen and the layer without bytecode would stay. So it is an error."""
    proc = make(tmp_path, "TARGET_PYTHON=", timeout=60)
    assert proc.returncode != 0
    assert "no Python 3.13 to compile the layer's bytecode with" in proc.stderr
    assert "sam build --use-container" in proc.stderr and "REQUIRE_BYTECODE=0" in proc.stderr
    assert not (tmp_path / "python").exists(), "it stops before pip runs"


def test_a_build_without_bytecode_asked_for_says_so(tmp_path: Path) -> None:
    """REQUIRE_BYTECODE=0 builds on a machine with no Python 3.13 (the wheels are fetched for the
    target platform) and warns that the layer has no bytecode."""
    proc = make(
        tmp_path,
        f"PYTHON={sys.executable}",
        "PIP_PLATFORM=",
        f"TARGET_VERSION={HOST_VERSION}",
        "TARGET_PYTHON=",
        "REQUIRE_BYTECODE=0",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING: no Python" in proc.stderr
    assert sources_without_bytecode(tmp_path / "python" / "orderbridge", sys.implementation.cache_tag)


def _python313() -> str | None:
    """The interpreter the Makefile itself would pick for python3.13 (None when it finds none)."""
    proc = subprocess.run(
        ["make", "-s", "-C", str(LAYER), "--eval", "print-target: ; @echo $(TARGET_PYTHON)", "print-target"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = proc.stdout.strip()
    return found or None


@pytest.mark.skipif(importlib.util.find_spec("pip") is None, reason="pip is needed to build the layer")
def test_the_templates_build_compiles_for_python_3_13(tmp_path: Path) -> None:
    """The build as `sam build` runs it: arm64 / CPython 3.13 wheels and cpython-313 bytecode."""
    python313 = _python313()
    if python313 is None:
        pytest.skip("no Python 3.13 on this machine (the other tests cover the build with this Python)")
    proc = make(tmp_path, f"PYTHON={sys.executable}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    python = tmp_path / "python"
    assert sources_without_bytecode(python, "cpython-313") == []
    assert {pyc_flags(p) for p in python.rglob("*.cpython-313.pyc")} == {0b01}
    assert list(python.glob("pydantic_core/*aarch64*.so")), "arm64 wheels"
