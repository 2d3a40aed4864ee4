"""Java and the Kafka broker's jars, packed small enough to travel to a lent GPU machine.

    .venv/bin/python -m bench.device_kit            # writes .devkit/ and .whl/ (git-ignored)

The lent machines have no Java and reach no network, so serve cannot drain a Kafka backlog
there unless the broker travels with the checkout, which may be 64 MiB in all (tracked files
included). Two archives do it:

- `.devkit/jre.tar.xz`: a Java runtime cut by `jlink` from this machine's JDK to the modules
  the broker uses (no debug symbols, headers or man pages);
- `.devkit/kafka-libs.tar.xz`: the broker's jars (stream.devtools.broker.fetch_jars), each
  rewritten uncompressed and without the native libraries of other platforms, so that xz
  compresses the classes instead of meeting deflate's output; unpacked, it is
  the layout `fetch_jars` leaves in its cache (`kafka-<version>/libs`, fetched marker).

bench/gpu_check.sh unpacks both when `.devkit` is carried, puts the runtime first on PATH and
points LOGAD_CACHE_DIR at the jars, so that stream.devtools.broker starts the broker there as
it does here. The runtime is this machine's x86-64 Linux build, for x86-64 Linux machines.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schemas.runtime.console import out  # noqa: E402
from stream.devtools import broker  # noqa: E402

KIT = ROOT / ".devkit"
XzPreset = Literal[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
CARRY_LIMIT = 64 * 1024 * 1024
"""What a device call may send: the tracked files and everything carried, together."""

JRE_MODULES = (
    "java.base", "java.desktop", "java.instrument", "java.logging", "java.management",
    "java.naming", "java.net.http", "java.scripting", "java.security.jgss",
    "java.security.sasl", "java.sql", "java.xml", "jdk.crypto.ec", "jdk.management",
    "jdk.naming.dns", "jdk.net", "jdk.security.auth", "jdk.unsupported", "jdk.zipfs",
)  # fmt: skip
"""The broker's needs, java.desktop for its java.beans: tests/process/test_device_kit.py
starts a broker under the runtime they make."""

NATIVE_SUFFIXES = (".so", ".dll", ".dylib", ".jnilib")
KEEP_NATIVE = ("linux/amd64/", "Linux/x86_64/", "linux/x86_64/")
"""zstd-jni and snappy-java carry a native library per platform; the device needs one."""


def trim_jar(src: Path, dst: Path) -> int:
    """`src` rewritten to `dst` stored (uncompressed), without other platforms' native
    libraries; the number of entries dropped."""
    dropped = 0
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            name = info.filename
            if name.endswith(NATIVE_SUFFIXES) and not any(k in name for k in KEEP_NATIVE):
                dropped += 1
                continue
            # A fresh entry: the original's flags (a trailing data descriptor) would not
            # match a stored copy.
            entry = zipfile.ZipInfo(name, date_time=info.date_time)
            entry.external_attr = info.external_attr
            zout.writestr(entry, zin.read(name), compress_type=zipfile.ZIP_STORED)
    return dropped


def build_libs(
    libs: Path, dst: Path, version: str = broker.KAFKA_VERSION, preset: XzPreset = 6
) -> Path:
    """The broker's jars as `dst` (tar.xz of `kafka-<version>/libs` and the fetched marker;
    `preset`: xz's level, lower is faster and larger)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / f"kafka-{version}"
        (home / "libs").mkdir(parents=True)
        for jar in sorted(libs.glob("*.jar")):
            trim_jar(jar, home / "libs" / jar.name)
        (home / broker.FETCHED_MARKER).write_text(version + "\n")
        with tarfile.open(dst, "w:xz", preset=preset) as tar:
            tar.add(home, arcname=home.name)
    return dst


def build_jre(dst: Path, modules: Sequence[str] = JRE_MODULES, preset: XzPreset = 6) -> Path:
    """A runtime of `modules` cut by jlink, as `dst` (tar.xz of `jre/`; `preset` as in
    build_libs)."""
    jlink = shutil.which("jlink")
    if jlink is None:
        raise SystemExit("jlink is missing: a JDK (not only a JRE) 17 or newer builds the kit")
    with tempfile.TemporaryDirectory() as tmp:
        jre = Path(tmp) / "jre"
        cmd = [jlink, "--add-modules", ",".join(modules), "--strip-debug", "--no-header-files",
               "--no-man-pages", "--compress=0", "--output", str(jre)]  # fmt: skip
        subprocess.run(cmd, check=True)
        with tarfile.open(dst, "w:xz", preset=preset) as tar:
            tar.add(jre, arcname="jre")
    return dst


DEVICE_WHEELS = ("aiokafka", "async-timeout", "orjson", "structlog")
"""What logad imports that the lent machines' image lacks (its package list: the device
library's KINDS.md), fetched at this venv's versions."""
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def fetch_wheels(dst: Path) -> list[Path]:
    """DEVICE_WHEELS for the device's Python, at this venv's versions, into `dst`."""
    from importlib.metadata import version

    dst.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
           "--only-binary=:all:", "--python-version", DEVICE_PYTHON, "--implementation", "cp",
           "-d", str(dst)]  # fmt: skip
    for platform in DEVICE_PLATFORMS:
        cmd += ["--platform", platform]
    subprocess.run(cmd + [f"{n}=={version(n)}" for n in DEVICE_WHEELS], check=True)
    return sorted(dst.glob("*.whl"))


def tracked_bytes(repo: Path = ROOT) -> int:
    """The size of the files git tracks: they travel with every device call."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True
    ).stdout.split(b"\0")
    return sum(
        (repo / n.decode()).stat().st_size for n in names if n and (repo / n.decode()).is_file()
    )


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=KIT, help="where the kit goes (default: .devkit)")
    p.add_argument(
        "--wheels",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also fetch the Python wheels the device lacks into .whl/ (default: on)",
    )
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.wheels:
        out("fetching the wheels the device lacks ...")
        wheels = fetch_wheels(ROOT / ".whl")
        out("  " + ", ".join(w.name for w in wheels))
    out("packing the Java runtime (jlink) ...")
    jre = build_jre(a.out / "jre.tar.xz")
    out("packing the broker's jars ...")
    libs = build_libs(broker.fetch_jars(), a.out / "kafka-libs.tar.xz")
    mib = 1024 * 1024
    total = tracked_bytes() + folder_bytes(a.out) + folder_bytes(ROOT / ".whl")
    out(
        f"{jre.stat().st_size / mib:.1f} MiB runtime, {libs.stat().st_size / mib:.1f} MiB jars; "
        f"with the tracked files and .whl/ a device call sends {total / mib:.1f} MiB of "
        f"{CARRY_LIMIT / mib:.0f}"
    )
    if total > CARRY_LIMIT:
        raise SystemExit("too large to travel: carry fewer wheels, or trim the kit")
    out(f"carry {a.out.relative_to(ROOT) if a.out.is_relative_to(ROOT) else a.out} and .whl")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
