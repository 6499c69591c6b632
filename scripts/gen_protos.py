"""Regenerate everything derived from protos/: Python stubs, the Envoy descriptor, the OpenAPI document.

Usage:  python scripts/gen_protos.py            # rewrite gen/ and third_party/ in place
        python scripts/gen_protos.py --check    # regenerate into a temp dir and diff (CI)

Steps: copy the Google API protos from the installed googleapis-common-protos into third_party/
(buf's second, offline module), `buf lint`, `buf build` the descriptor set Envoy's transcoder
loads (gen/ossa/ossa.binpb), grpc_tools.protoc for *_pb2.py, *_pb2.pyi and *_pb2_grpc.py of our own
protos only (generating google/* would shadow the installed packages), then the OpenAPI 3.1
document (gen/ossa/openapi.json) from the descriptor. Both sit inside the `ossa` package so they
ship as its package data (read them with importlib.resources.files("ossa")).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / "third_party"
GOOGLE_PROTOS = (
    "google/api/annotations.proto",
    "google/api/http.proto",
    "google/api/httpbody.proto",
    "google/rpc/code.proto",
    "google/rpc/error_details.proto",
    "google/rpc/status.proto",
)


def _run(cmd: list[str], cwd: Path = ROOT) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")


def _buf() -> str:
    exe = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    if not Path(exe).exists():
        raise SystemExit("buf not found: pip install buf-bin (part of the [dev] extra)")
    return exe


def sync_third_party(dest: Path) -> None:
    from google.api import annotations_pb2  # from googleapis-common-protos

    src_root = Path(annotations_pb2.__file__).resolve().parent.parent.parent
    for rel in GOOGLE_PROTOS:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_root / rel, target)


def own_protos() -> list[str]:
    return sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))


def generate(out: Path) -> None:
    """Write the whole of gen/ into `out` (which must exist and be empty) from protos/ and third_party/."""
    import grpc_tools

    buf = _buf()
    _run([buf, "lint"])
    (out / "ossa").mkdir(parents=True, exist_ok=True)
    _run([buf, "build", "--as-file-descriptor-set", "-o", str(out / "ossa" / "ossa.binpb")])
    wkt = Path(grpc_tools.__file__).resolve().parent / "_proto"
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{THIRD_PARTY}",
            f"-I{wkt}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            *own_protos(),
        ]
    )
    for pkg in sorted({p.parent for p in out.rglob("*_pb2.py")}):
        while pkg != out:
            (pkg / "__init__.py").touch()
            pkg = pkg.parent
    sys.path.insert(0, str(ROOT))
    from gateway_http.openapi import write_openapi

    write_openapi(out / "ossa" / "ossa.binpb", out / "ossa" / "openapi.json")


def _diff(a: Path, b: Path) -> list[str]:
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    problems = [f"missing from the tree: {p}" for p in sorted(files_b - files_a)]
    problems += [f"stale in the tree: {p}" for p in sorted(files_a - files_b)]
    problems += [f"differs: {p}" for p in sorted(files_a & files_b) if not filecmp.cmp(a / p, b / p, shallow=False)]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if gen/ or third_party/ is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, tp = Path(tmp) / "gen", Path(tmp) / "third_party"
        out.mkdir()
        sync_third_party(tp if args.check else THIRD_PARTY)
        generate(out)
        if args.check:
            problems = _diff(ROOT / "gen", out) + _diff(THIRD_PARTY, tp)
            for line in problems:
                print(line)
            if problems:
                print("gen/ is stale: run `python scripts/gen_protos.py` and commit the result")
                return 1
            print("gen/ is up to date")
            return 0
        shutil.rmtree(ROOT / "gen", ignore_errors=True)
        shutil.copytree(out, ROOT / "gen")
    print("regenerated gen/ and third_party/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
