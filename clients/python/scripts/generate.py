#!/usr/bin/env python3
"""Generates the gRPC stubs and their type stubs from proto/ into src/ferry_client/_proto.

With --check, generates into a temporary directory and fails if the checked-in code differs,
so CI catches a proto change whose client was not regenerated. Needs the pinned tools from
requirements-dev.txt (grpcio-tools, mypy-protobuf)."""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
PROTO_ROOT = HERE.parents[1] / "proto"
TARGET = HERE / "src" / "ferry_client" / "_proto"
PROTOS = ["ferry/v1/ferry.proto"]
# protoc writes absolute imports of the proto package; the stubs live inside ferry_client.
IMPORT_FROM = "from ferry.v1 import"
IMPORT_TO = "from ferry_client._proto.ferry.v1 import"


def generate(out: Path) -> None:
    plugin_dir = Path(sys.executable).parent
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"--plugin=protoc-gen-mypy={plugin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={plugin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={out}",
            f"--mypy_grpc_out={out}",
            *PROTOS,
        ],
        check=True,
        cwd=PROTO_ROOT,
    )
    for path in out.rglob("*.py*"):
        path.write_text(path.read_text().replace(IMPORT_FROM, IMPORT_TO))
    for package in [out, *[p for p in out.rglob("*") if p.is_dir()]]:
        (package / "__init__.py").touch()


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the checked-in stubs are stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch) / "_proto"
        fresh.mkdir()
        generate(fresh)
        if args.check:
            if not TARGET.exists() or not same_tree(fresh, TARGET):
                print("clients/python stubs are stale: run clients/python/scripts/generate.py", file=sys.stderr)
                return 1
            print("clients/python stubs match proto/")
            return 0
        shutil.rmtree(TARGET, ignore_errors=True)
        shutil.copytree(fresh, TARGET)
    print(f"wrote {TARGET.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
