"""Generate the Go and Java clients' code from proto/ (`make clients`); the generated code is committed.

Usage: python clients/generate.py {go,java}... [--out DIR]

- go: protoc (grpcio-tools, pinned below) with protoc-gen-go and protoc-gen-go-grpc (pinned in
  deploy/install-go-tools.sh, built into .tools/) writes package ``sentinelv1`` into clients/go/sentinelv1.
- java: protoc and protoc-gen-grpc-java from Maven Central, at the versions pinned in clients/java/pom.xml
  (grpcio-tools' protoc has no Java generator), write io.sentinelstream.v1 into
  clients/java/src/generated/java.
``--out DIR`` writes there instead (the staleness tests generate into a temporary directory and compare).

Why pinned compilers rather than the virtualenv's grpcio-tools: protoc's version is written into the
generated code (the Go files' header, the Java files' runtime version check), and `make install` upgrades
the virtualenv's grpcio-tools whenever a new one is out. Generated code that changed with it would fail the
staleness tests on a day nobody touched proto/, and Java code from a newer protoc than the pinned
protobuf-java runtime refuses to load. So Go uses grpcio-tools as decision 0010 says, at
GRPCIO_TOOLS_VERSION, installed from PyPI into .tools/ on first use; the include path is proto/ (which
vendors google/api) plus protoc's well-known types, as setup.py uses.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
TOOLS_DIR = ROOT / ".tools"
GRPCIO_TOOLS_VERSION = "1.85.4"  # its protoc is 35.1 (Java gencode 4.35.1: protobuf-java in pom.xml)

GO_MODULE = "github.com/sentinelstream/sentinel/clients/go"
GO_PACKAGE = "sentinelv1"
GO_OUT = ROOT / "clients" / "go" / GO_PACKAGE

JAVA_POM = ROOT / "clients" / "java" / "pom.xml"
JAVA_OUT = ROOT / "clients" / "java" / "src" / "generated" / "java"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


def pinned_protoc() -> Path:
    """The directory holding grpcio-tools at GRPCIO_TOOLS_VERSION for this Python (installed if missing)."""
    target = TOOLS_DIR / f"grpcio-tools-{GRPCIO_TOOLS_VERSION}-{sys.implementation.cache_tag}"
    if not (target / "grpc_tools" / "protoc.py").exists():
        print(f"installing grpcio-tools {GRPCIO_TOOLS_VERSION} into {target} (pip)", file=sys.stderr)
        shutil.rmtree(target, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
        subprocess.run([*pip, "--target", str(target), f"grpcio-tools=={GRPCIO_TOOLS_VERSION}"], check=True)
    return target


def include_paths(protoc_dir: Path) -> list[Path]:
    """proto/ (which vendors google/api for the HTTP annotations, see proto/buf.yaml) and protoc's
    well-known types, as setup.py passes them when it builds the Python code."""
    return [PROTO_ROOT, protoc_dir / "grpc_tools" / "_proto"]


def sentinel_protos() -> list[str]:
    """The public contract: every proto/sentinel/v1/*.proto, relative to proto/."""
    return sorted(
        str(path.relative_to(PROTO_ROOT)) for path in (PROTO_ROOT / "sentinel" / "v1").glob("*.proto")
    )


def protoc(arguments: list[str], compiler: Path | None = None) -> None:
    """Run protoc (the pinned grpcio-tools' unless ``compiler`` is given) on every sentinel/v1 file with
    the given plugin and output arguments."""
    protoc_dir = pinned_protoc()  # its well-known types are included either way
    includes = [f"-I{path}" for path in include_paths(protoc_dir)]
    environment = {**os.environ, "PYTHONPATH": str(protoc_dir)}
    executable = [str(compiler)] if compiler else [sys.executable, "-m", "grpc_tools.protoc"]
    subprocess.run([*executable, *includes, *arguments, *sentinel_protos()], check=True, env=environment)


def replace_tree(generated: Path, out: Path) -> None:
    """Make ``out`` exactly ``generated`` (files of deleted .proto files disappear)."""
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(generated, out)


def generate_go(out: Path) -> None:
    """All of sentinel/v1 as one Go package, whatever the files' go_package options say."""
    plugins = {name: TOOLS_DIR / name for name in ("protoc-gen-go", "protoc-gen-go-grpc")}
    missing = [name for name, path in plugins.items() if not path.exists()]
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing in .tools/: run deploy/install-go-tools.sh --tests")
    mapping = ",".join(f"M{name}={GO_MODULE}/{GO_PACKAGE};{GO_PACKAGE}" for name in sentinel_protos())
    with tempfile.TemporaryDirectory() as scratch:
        protoc(
            [
                *(f"--plugin={name}={path}" for name, path in plugins.items()),
                f"--go_out={scratch}",
                f"--go_opt=module={GO_MODULE},{mapping}",
                f"--go-grpc_out={scratch}",
                f"--go-grpc_opt=module={GO_MODULE},{mapping}",
            ]
        )
        replace_tree(Path(scratch) / GO_PACKAGE, out)


def pom_property(name: str) -> str:
    """A <properties> value of clients/java/pom.xml (the one place the Java versions are written)."""
    namespace = {"pom": "http://maven.apache.org/POM/4.0.0"}
    value = ElementTree.parse(JAVA_POM).getroot().findtext(f"pom:properties/pom:{name}", namespaces=namespace)
    if not value:
        raise SystemExit(f"{JAVA_POM} has no <{name}> property")
    return value


def maven_executable(group: str, artifact: str, version: str) -> Path:
    """A native executable that Maven Central publishes per platform (protoc, protoc-gen-grpc-java),
    copied by mvn into .tools/ on first use."""
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch_64", "arm64": "aarch_64"}[
        platform.machine()
    ]
    classifier = {"Linux": "linux", "Darwin": "osx"}[platform.system()] + f"-{arch}"
    directory = TOOLS_DIR / f"{artifact}-{version}"
    executable = directory / f"{artifact}-{version}-{classifier}.exe"
    if not executable.exists():
        copy = f"-Dartifact={group}:{artifact}:{version}:exe:{classifier}"
        command = [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(JAVA_POM),
            f"{DEPENDENCY_PLUGIN}:copy",
            copy,
            f"-DoutputDirectory={directory}",
        ]
        subprocess.run(command, check=True)
    executable.chmod(0o755)
    return executable


def generate_java(out: Path) -> None:
    """Messages (protoc's Java generator) and service stubs (grpc-java) for all of sentinel/v1.

    grpcio-tools' protoc has no Java generator, so Java takes protoc itself from Maven Central, at the
    pom's protobuf.version: the generated code then matches the protobuf-java runtime exactly."""
    compiler = maven_executable("com.google.protobuf", "protoc", pom_property("protobuf.version"))
    plugin = maven_executable("io.grpc", "protoc-gen-grpc-java", pom_property("grpc.version"))
    with tempfile.TemporaryDirectory() as scratch:
        options = [
            f"--plugin=protoc-gen-grpc-java={plugin}",
            f"--java_out={scratch}",
            f"--grpc-java_out={scratch}",
        ]
        protoc(options, compiler=compiler)
        replace_tree(Path(scratch), out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("languages", nargs="+", choices=["go", "java"])
    parser.add_argument("--out", type=Path, help="where to write instead of the client's own folder")
    arguments = parser.parse_args()
    if arguments.out is not None and len(arguments.languages) > 1:
        parser.error("--out goes with one language")
    for language in arguments.languages:
        if language == "go":
            generate_go(arguments.out or GO_OUT)
        else:
            generate_java(arguments.out or JAVA_OUT)
        print(f"generated the {language} client's code from {PROTO_ROOT}", file=sys.stderr)


if __name__ == "__main__":
    main()
