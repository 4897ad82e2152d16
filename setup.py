"""Build SentinelStream.

The repository keeps one folder per concern (``proto/``, ``server/``, ``hotpath/`` ...), but an
installed SentinelStream is a single ``sentinel`` package: ``package_dir`` maps every folder under
that one name, so nothing generic such as ``server`` lands in site-packages. The build also
generates the protobuf/gRPC modules from ``proto/`` (they are never edited by hand) and compiles
the Cython hot path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from setuptools import Command, Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent.resolve()
PROTO_ROOT = ROOT / "proto"
PROTO_PACKAGE_DIR = PROTO_ROOT / "sentinel" / "v1"

PACKAGE_DIRS = {
    "sentinel": "core",
    "sentinel.v1": "proto/sentinel/v1",
    "sentinel.server": "server",
    "sentinel.server.rules": "server/rules",
    "sentinel.server.dashboard": "server/dashboard",
    "sentinel.hotpath": "hotpath",
    "sentinel.ledger": "ledger",
    "sentinel.model_export": "model_export",
    "sentinel.clients": "clients/python",
    "sentinel.bench": "bench",
    "sentinel.fuzz": "fuzz",
    "sentinel.events": "events",
}


class BuildProto(Command):
    """Generate ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` next to the ``.proto`` files."""

    description = "generate Python code from proto/sentinel/v1/*.proto"
    user_options: ClassVar[list[tuple[str, str | None, str]]] = []

    def initialize_options(self) -> None:
        """No options."""

    def finalize_options(self) -> None:
        """No options."""

    def run(self) -> None:
        from grpc_tools import protoc

        protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_PACKAGE_DIR.glob("*.proto"))
        well_known = Path(protoc.__file__).parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={PROTO_ROOT}",
            f"--pyi_out={PROTO_ROOT}",
            f"--grpc_python_out={PROTO_ROOT}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {protos}")
        (PROTO_PACKAGE_DIR / "__init__.py").write_text(
            '"""Generated from proto/sentinel/v1/*.proto by setup.py; do not edit."""\n'
        )


HOTPATH_EXTENSIONS = (
    "_constants",
    "_codec",
    "_columns",
    "_features",
    "_rules",
    "_wire",
    "_respond",
    "_ledger",
    "_claims",
)
# SENTINEL_HOTPATH_DEBUG=1 builds the hot path with Cython's checks on (`make test-debug`): memoryview
# indexing bounds-checked, negative indices included (wraparound stays off as in the release build, so
# an index of -1 is an IndexError rather than the last element), and memoryviews checked initialized.
HOTPATH_DEBUG = os.environ.get("SENTINEL_HOTPATH_DEBUG") == "1"
HOTPATH_DEBUG_DIR = "build/hotpath-debug"


def hotpath_extensions() -> list[Extension]:
    """The Cython hot path (sentinel.hotpath._*), compiled with -O3.

    ``-ffp-contract=off`` keeps gcc from fusing multiply-adds (it does on aarch64), so the compiled
    features round exactly like the pure-Python reference they are tested against. The checks are off
    here rather than in each file, so that the debug build can turn them on; its C files go to
    HOTPATH_DEBUG_DIR, never over the release build's.
    """
    import numpy
    from Cython.Build import cythonize
    from Cython.Compiler import Options

    Options.show_performance_hints = not HOTPATH_DEBUG  # the checks are the point of the debug build
    extensions = [
        Extension(
            f"sentinel.hotpath.{name}",
            [f"hotpath/{name}.pyx"],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            extra_compile_args=["-O3", "-ffp-contract=off"],
        )
        for name in HOTPATH_EXTENSIONS
    ]
    # _constants.pxd (numbers shared with Python), _state.pxd, _checks.pxd and _protowire.pxd are inline
    # C "headers" shared by the modules.
    return cythonize(
        extensions,
        include_path=["hotpath"],
        language_level=3,
        build_dir=f"{HOTPATH_DEBUG_DIR}/c" if HOTPATH_DEBUG else None,
        compiler_directives={
            "embedsignature": True,
            "boundscheck": HOTPATH_DEBUG,
            "wraparound": False,
            "initializedcheck": HOTPATH_DEBUG,
        },
    )


class BuildPyWithProto(build_py):
    """Generate the protobuf modules before the packages are collected."""

    def run(self) -> None:
        self.run_command("build_proto")
        super().run()


setup(
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={
        "sentinel": ["py.typed"],
        "sentinel.v1": ["*.proto", "*.pyi"],
        "sentinel.bench": ["data/*.csv", "data/*.md"],
        "sentinel.ledger": ["migrations/*.sql"],
        "sentinel.server.rules": ["*.toml"],
        "sentinel.server.dashboard": ["static/*.*", "static/vendor/*"],
        "sentinel.model_export": ["default_model/*.md", "default_model/DEFAULT", "default_model/*/*"],
        "sentinel.hotpath": ["*.pyi", "*.pxd"],
    },
    exclude_package_data={"sentinel.hotpath": ["*.c"]},  # generated by Cython, compiled into the .so
    ext_modules=hotpath_extensions(),
    cmdclass={"build_proto": BuildProto, "build_py": BuildPyWithProto},
)
