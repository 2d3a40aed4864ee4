"""bench/device_kit.py: the packed Java runtime and jars start a real broker, as a lent GPU
machine (no Java, no network) would start it from the carried kit."""

from __future__ import annotations

import asyncio
import os
import tarfile
import zipfile
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.device_kit import build_jre, build_libs, trim_jar
from stream.devtools import broker


def test_trim_jar_stores_entries_and_keeps_only_linux_x86_64_natives(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.jar", tmp_path / "b.jar"
    with zipfile.ZipFile(src, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("org/A.class", b"x" * 1000)
        z.writestr("linux/amd64/libz.so", b"elf")
        z.writestr("darwin/aarch64/libz.dylib", b"macho")
        z.writestr("win/amd64/z.dll", b"pe")
    assert trim_jar(src, dst) == 2
    with zipfile.ZipFile(dst) as z:
        assert z.namelist() == ["org/A.class", "linux/amd64/libz.so"]
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        assert z.read("org/A.class") == b"x" * 1000


async def _round_trip(bootstrap: str) -> bytes:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("kit", b"hello")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer("kit", bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
        return bytes(record.value)
    finally:
        await consumer.stop()


@pytest.mark.slow
def test_the_kit_starts_a_broker_with_its_own_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit, unpacked = tmp_path / "kit", tmp_path / "device"
    kit.mkdir()
    build_jre(kit / "jre.tar.xz", preset=0)
    build_libs(broker.fetch_jars(), kit / "kafka-libs.tar.xz", preset=0)
    cache = unpacked / "cache"
    cache.mkdir(parents=True)
    with tarfile.open(kit / "jre.tar.xz") as t:
        t.extractall(unpacked, filter="tar")
    with tarfile.open(kit / "kafka-libs.tar.xz") as t:
        t.extractall(cache, filter="tar")
    # As gpu_check.sh sets it up: the kit's java first on PATH, its jars as the cache.
    monkeypatch.setenv("PATH", f"{unpacked / 'jre' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("LOGAD_CACHE_DIR", str(cache))
    assert broker.fetch_jars() == cache / f"kafka-{broker.KAFKA_VERSION}" / "libs"
    data_dir = tmp_path / "kafka"
    info = broker.start(port=broker.free_port(), data_dir=data_dir, timeout_s=90)
    try:
        assert info.pid is not None
        exe = Path(os.readlink(f"/proc/{info.pid}/exe"))
        assert exe.is_relative_to(unpacked / "jre"), exe
        assert asyncio.run(_round_trip(info.bootstrap)) == b"hello"
    finally:
        broker.stop(data_dir=data_dir)
