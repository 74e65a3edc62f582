"""Package size: the layer and each function as `sam build` would make them, unzipped and zipped.

The layer is built the way template.yaml says (one source of truth, read from the template):
with `BuildMethod: makefile` (as now) by running `layers/orderbridge/Makefile`'s
`build-OrderbridgeLayer` target in a scratch copy of the layer's `ContentUri`, exactly as `sam
build` does: the requirements of `layers/orderbridge/requirements.txt` installed for the target
platform (arm64 / CPython 3.13 wheels), boto3 and its dependencies removed (the runtime ships
them), the `orderbridge` package copied in. With `BuildMethod: python3.13` it emulates SAM's
python builder instead (pip for the target platform into `python/`, the `ContentUri` copied next
to it). If the target platform cannot be resolved, the host platform is used and the result says
so. Each function (every `functions/<name>/app.py`) is its `CodeUri` directory. The table marks
anything in the layer that the runtime already provides (there should be nothing left).

Sizes are against Lambda's 250 MB unzipped limit (function plus all its layers) and a 20 MB
target. Prints tables and writes bench/results/package_size.json.

    .venv/bin/python bench/package_size.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchlib import ROOT, mib, write_result
from rich.console import Console
from rich.table import Table

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
TARGET = 20 * 1024 * 1024
PLATFORM = ["--platform", "manylinux2014_aarch64", "--python-version", "3.13", "--implementation", "cp"]
# What the python3.13 runtime ships: boto3 and its dependencies.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_install(requirements: Path, target: Path, *, cross: bool) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    cmd += [*PLATFORM, "--only-binary=:all:"] if cross else []
    cmd += ["--target", str(target), "-r", str(requirements)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)


def layer_build_method() -> tuple[str, str]:
    """The layer's BuildMethod and BuildArchitecture, from template.yaml."""
    from orderbridge_local.template_resources import load_template

    layer = load_template(ROOT / "template.yaml")["Resources"]["OrderbridgeLayer"]
    meta = layer.get("Metadata", {})
    return str(meta.get("BuildMethod", "")), str(meta.get("BuildArchitecture", "x86_64"))


def make_layer(artifacts: Path, scratch: Path, *, cross: bool) -> subprocess.CompletedProcess[str]:
    """`sam build` with `BuildMethod: makefile`: the target run in a scratch copy of the ContentUri."""
    shutil.copytree(ROOT / "layers" / "orderbridge", scratch, ignore=IGNORE)
    cmd = ["make", "--no-print-directory", "-C", str(scratch), "build-OrderbridgeLayer"]
    cmd += [f"ARTIFACTS_DIR={artifacts}", f"PYTHON={sys.executable}"]
    cmd += [] if cross else ["PIP_PLATFORM="]
    # with a Python 3.13 here the layer is measured with its bytecode, as deployed; without one,
    # measured without it rather than not at all (the run's output says which)
    cmd += ["REQUIRE_BYTECODE=0"]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def zip_dir(source: Path, archive: Path, prefix: str = "") -> dict[str, int]:
    """Zip like `sam build`/`sam package` (deflate); returns each entry's compressed size."""
    compressed: dict[str, int] = {}
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(files_under(source)):
            zf.write(path, prefix + path.relative_to(source).as_posix())
        for info in zf.infolist():
            compressed[info.filename] = info.compress_size
    return compressed


def distributions(site: Path) -> dict[str, dict[str, Any]]:
    """Installed distributions: name, version, their files (from RECORD) and what they require."""
    found: dict[str, dict[str, Any]] = {}
    for info in site.glob("*.dist-info"):
        meta = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^Name: (.+)$", meta, re.M)
        version = re.search(r"^Version: (.+)$", meta, re.M)
        requires = [
            (canonical(m.group(1)), m.group(2) or "")
            for m in re.finditer(r"^Requires-Dist: ([A-Za-z0-9._-]+)([^\n]*)$", meta, re.M)
        ]
        files = set()
        record = info / "RECORD"
        if record.exists():
            for line in record.read_text(encoding="utf-8", errors="replace").splitlines():
                rel = line.rsplit(",", 2)[0]
                path = (site / rel).resolve()
                if path.is_file():
                    files.add(path)
        files |= set(files_under(info))
        dist = canonical(name.group(1).strip() if name else info.name.split("-")[0])
        found[dist] = {
            "name": dist,
            "version": version.group(1).strip() if version else "?",
            "files": files,
            "requires": requires,
        }
    return found


def requested(requirements: Path) -> dict[str, set[str]]:
    """requirements.txt: distribution -> extras asked for."""
    asked: dict[str, set[str]] = {}
    for line in requirements.read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9._-]+)(?:\[([^\]]*)\])?", line.split("#", 1)[0])
        if m:
            asked[canonical(m.group(1))] = {canonical(e) for e in (m.group(2) or "").split(",") if e.strip()}
    return asked


def required_by(dists: dict[str, dict[str, Any]], asked: dict[str, set[str]]) -> dict[str, list[str]]:
    """Who brought each distribution in: requirements.txt and/or the distributions that require it
    (a requirement behind an extra counts only when that extra was asked for)."""
    extras = {name: set(asked.get(name, set())) for name in dists}
    found: dict[str, list[str]] = {name: (["requirements.txt"] if name in asked else []) for name in dists}
    for dist in dists.values():
        for target, marker in dist["requires"]:
            extra = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", marker)
            wanted = extra is None or canonical(extra.group(1)) in extras[dist["name"]]
            if target in found and wanted and dist["name"] not in found[target]:
                found[target].append(dist["name"])
    return found


def size(n_bytes: float) -> str:
    return f"{n_bytes / 1024:.1f} KB" if n_bytes < 100 * 1024 else f"{mib(n_bytes):.2f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--top", type=int, default=10, help="largest packages listed (default 10)")
    parser.add_argument("--host-platform", action="store_true", help="skip the arm64 / 3.13 attempt")
    args = parser.parse_args(argv)
    console = Console(width=120)
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="orderbridge-package-") as tmp:
        build = Path(tmp)
        site = build / "layer" / "python"
        requirements = ROOT / "layers" / "orderbridge" / "requirements.txt"
        method, arch = layer_build_method()
        platform_note = "manylinux2014_aarch64, CPython 3.13 (the template's arm64 / python3.13)"

        def build_layer(cross: bool) -> subprocess.CompletedProcess[str]:
            shutil.rmtree(build / "layer", ignore_errors=True)
            shutil.rmtree(build / "scratch", ignore_errors=True)
            if method == "makefile":
                return make_layer(build / "layer", build / "scratch", cross=cross)
            return pip_install(requirements, site, cross=cross)

        proc = None if args.host_platform else build_layer(cross=True)
        if proc is None or proc.returncode != 0:
            if proc is not None:
                console.print(
                    f"[yellow]arm64 / 3.13 build failed, using the host platform:\n{proc.stderr[-1500:]}"
                )
            proc = build_layer(cross=False)
            platform_note = (
                f"host platform ({sys.platform}, CPython {sys.version.split()[0]}): NOT the target"
            )
            if proc.returncode != 0:
                console.print(f"[red]layer build failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}")
                return 1
        dists = distributions(site)
        if method != "makefile":
            # SAM's python builder copies the whole ContentUri next to the installed requirements.
            shutil.copytree(ROOT / "layers/orderbridge/orderbridge", site / "orderbridge", ignore=IGNORE)
            shutil.copy2(requirements, site / "requirements.txt")
        platform_note += f"; layer BuildMethod `{method}`, BuildArchitecture `{arch}` (template.yaml)"
        functions = {}
        for source in sorted(p.parent for p in (ROOT / "functions").glob("*/app.py")):
            name = source.name
            functions[name] = build / name
            shutil.copytree(source, functions[name], ignore=IGNORE)

        layer_zip = zip_dir(site, build / "layer.zip", prefix="python/")
        layer_files = files_under(site)
        artifacts: dict[str, dict[str, Any]] = {
            "layer": {
                "files": len(layer_files),
                "unzipped": sum(p.stat().st_size for p in layer_files),
                "zipped": (build / "layer.zip").stat().st_size,
            }
        }
        for name, directory in functions.items():
            zip_dir(directory, build / f"{name}.zip")
            files = files_under(directory)
            artifacts[f"{name} function"] = {
                "files": len(files),
                "unzipped": sum(p.stat().st_size for p in files),
                "zipped": (build / f"{name}.zip").stat().st_size,
            }
        for name in functions:
            fn, layer = artifacts[f"{name} function"], artifacts["layer"]
            artifacts[f"{name}: function + layer"] = {
                k: fn[k] + layer[k] for k in ("files", "unzipped", "zipped")
            }

        # Per distribution, unzipped and zipped; whatever no RECORD claims is the layer's own.
        owner: dict[Path, str] = {}
        for dist in dists.values():
            for path in dist["files"]:
                owner[path] = dist["name"]
        sizes: dict[str, dict[str, int]] = defaultdict(lambda: {"files": 0, "unzipped": 0, "zipped": 0})
        for path in layer_files:
            rel = "python/" + path.relative_to(site).as_posix()
            key = owner.get(path.resolve())
            if key is None:
                key = "orderbridge (layer source)" if rel.startswith("python/orderbridge/") else "(other)"
            sizes[key]["files"] += 1
            sizes[key]["unzipped"] += path.stat().st_size
            sizes[key]["zipped"] += layer_zip.get(rel, 0)
        brought_by = required_by(dists, requested(requirements))

    largest = sorted(sizes.items(), key=lambda kv: kv[1]["unzipped"], reverse=True)
    runtime_bytes = sum(v["unzipped"] for k, v in sizes.items() if k in RUNTIME_PROVIDED)
    runtime_zipped = sum(v["zipped"] for k, v in sizes.items() if k in RUNTIME_PROVIDED)
    result = {
        "platform": platform_note,
        "limit_unzipped_mb": mib(LAMBDA_UNZIPPED_LIMIT),
        "target_mb": mib(TARGET),
        "artifacts": {
            name: {
                "files": a["files"],
                "unzipped_bytes": a["unzipped"],
                "zipped_bytes": a["zipped"],
                "unzipped_mb": mib(a["unzipped"]),
                "zipped_mb": mib(a["zipped"]),
                "share_of_limit": round(a["unzipped"] / LAMBDA_UNZIPPED_LIMIT, 3),
                "unzipped_vs_target": round(a["unzipped"] / TARGET, 2),
                "zipped_vs_target": round(a["zipped"] / TARGET, 2),
            }
            for name, a in artifacts.items()
        },
        "runtime_provided_in_layer_mb": {"unzipped": mib(runtime_bytes), "zipped": mib(runtime_zipped)},
        "layer_without_runtime_provided_mb": {
            "unzipped": mib(artifacts["layer"]["unzipped"] - runtime_bytes),
            "zipped": mib(artifacts["layer"]["zipped"] - runtime_zipped),
        },
        "packages": [
            {
                "package": name,
                "version": dists[name]["version"] if name in dists else "",
                "files": v["files"],
                "unzipped_mb": mib(v["unzipped"]),
                "zipped_mb": mib(v["zipped"]),
                "share_of_layer": round(v["unzipped"] / artifacts["layer"]["unzipped"], 3),
                "runtime_provides": name in RUNTIME_PROVIDED,
                "required_by": brought_by.get(name, []),
            }
            for name, v in largest
        ],
        "wall_seconds": round(time.monotonic() - started, 1),
    }

    table = Table(title=f"package size ({platform_note})")
    for col in (
        "artifact",
        "files",
        "unzipped",
        "zipped",
        "of 250 MB limit",
        "vs 20 MB target (unzipped / zipped)",
    ):
        table.add_column(col, justify="left" if col == "artifact" else "right")
    for name, a in result["artifacts"].items():
        table.add_row(
            name,
            str(a["files"]),
            size(a["unzipped_bytes"]),
            size(a["zipped_bytes"]),
            f"{a['share_of_limit']:.1%}",
            f"{a['unzipped_vs_target']:.2f}x / {a['zipped_vs_target']:.2f}x",
        )
    console.print(table)
    console.print(
        f"  in the layer but provided by the runtime (boto3 and its dependencies): "
        f"{result['runtime_provided_in_layer_mb']['unzipped']:.2f} MB unzipped, "
        f"{result['runtime_provided_in_layer_mb']['zipped']:.2f} MB zipped; the layer without them: "
        f"{result['layer_without_runtime_provided_mb']['unzipped']:.2f} MB / "
        f"{result['layer_without_runtime_provided_mb']['zipped']:.2f} MB"
    )
    top = Table(title=f"the {args.top} largest packages in the layer (MB = MiB)")
    for col in ("#", "package", "version", "unzipped", "zipped", "share", "runtime has it", "required by"):
        top.add_column(col, justify="right" if col in ("#", "unzipped", "zipped", "share") else "left")
    for i, p in enumerate(result["packages"][: args.top], 1):
        top.add_row(
            str(i),
            p["package"],
            p["version"],
            f"{p['unzipped_mb']:.2f} MB",
            f"{p['zipped_mb']:.2f} MB",
            f"{p['share_of_layer']:.0%}",
            "yes" if p["runtime_provides"] else "",
            ", ".join(p["required_by"]),
        )
    console.print(top)
    write_result("package_size", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
