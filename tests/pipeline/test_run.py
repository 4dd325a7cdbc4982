"""``streams.pipeline.run``: what the worker process sets up before Faust starts."""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import pytest

from streams.pipeline.run import tune_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_mmap_threshold_is_fixed_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert tune_malloc() is True


_MAPPED = """
import ctypes, ctypes.util, sys
from streams.pipeline.run import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc() is True
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def mapped(size):
    before = libc.mallinfo2().hblks
    block = libc.malloc(size)
    after = libc.mallinfo2().hblks
    libc.free(block)
    return after > before
print(mapped(300_000), mapped(2_500_000))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_message_comes_from_the_heap_and_a_checkpoint_chunk_is_mapped_once_tuned() -> None:
    """A fetched message (about 250 KB) is reused heap space, not a fresh mapping
    (faulting its pages in for every message cost a fifth of the worker's speed); a
    checkpoint chunk of a few MB is a mapping given back when freed. (glibc's default
    is not asserted: its threshold moves up with the largest mapped block freed, and
    what Python freed before the check, compiling modules in a fresh clone among
    others, decides whether a 300 KB block is mapped.)"""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def mapped(mode: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", _MAPPED, mode], env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert mapped("tuned") == "False True"


_ARENAS = """
import ctypes, ctypes.util, sys, tempfile, threading
from streams.pipeline.run import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc() is True
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
start = threading.Barrier(6)
def allocate():
    start.wait()
    kept = [bytes(200) for _ in range(20_000)]
    start.wait()
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with tempfile.NamedTemporaryFile() as out:
    fh = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, fh)
    libc.fclose(fh)
    print(open(out.name).read().count("<heap nr="))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_threads_share_two_malloc_arenas_once_tuned() -> None:
    """Six threads allocating at once get arenas of their own by default; a tuned
    worker process holds at most two (the consumer thread's garbage is reused)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}

    def heaps(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", _ARENAS, mode], env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        return int(run.stdout)

    assert heaps("default") > 2
    assert heaps("tuned") <= 2


def test_an_operator_threshold_and_arena_count_in_the_environment_are_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert tune_malloc() is False


def test_claimwatch_malloc_chooses_whether_the_worker_tunes_the_allocator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``compact`` (the default) tunes glibc before Faust starts; ``glibc`` leaves its
    defaults (faster, more RSS a line); anything else is refused in one line."""
    from streams.domain.errors import ClaimwatchError
    from streams.domain.policy import load_policy
    from streams.pipeline import run
    from streams.pipeline.settings import Settings

    class Started(Exception):
        pass

    def worker(*_args: object) -> None:
        raise Started

    tuned: list[bool] = []
    monkeypatch.setattr(run, "tune_malloc", lambda: tuned.append(True) or True)
    monkeypatch.setattr("streams.pipeline.worker.Worker", worker)
    for value, expected in ((None, [True]), ("compact", [True]), ("GLIBC", [])):
        tuned.clear()
        env = {"CLAIMWATCH_BROKER": "127.0.0.1:9"}
        if value is not None:
            env["CLAIMWATCH_MALLOC"] = value
        with pytest.raises(Started):
            run.run_worker(load_policy(), Settings.from_env(env))
        assert tuned == expected, value
    with pytest.raises(
        ClaimwatchError, match="CLAIMWATCH_MALLOC='jemalloc': use one of compact, glibc"
    ):
        Settings.from_env({"CLAIMWATCH_MALLOC": "jemalloc"})


def test_the_worker_names_the_rule_sections_its_policy_file_left_to_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from streams.domain.policy import DEFAULT_POLICY_PATH, load_policy
    from streams.pipeline import run
    from streams.pipeline.settings import Settings

    class Started(Exception):
        pass

    def worker(*_args: object) -> None:
        raise Started

    body = DEFAULT_POLICY_PATH.read_text("utf-8")
    start = body.index("[digital_share_low]")
    path = tmp_path / "policy.toml"
    path.write_text(body[:start] + body[body.index("\n[", start + 1) + 1 :], "utf-8")
    monkeypatch.setattr(run, "tune_malloc", lambda: True)
    monkeypatch.setattr("streams.pipeline.worker.Worker", worker)
    with caplog.at_level(logging.INFO, logger="claimwatch.worker"), pytest.raises(Started):
        run.run_worker(load_policy(path), Settings.from_env({"CLAIMWATCH_BROKER": "127.0.0.1:9"}))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        f"policy {path} names no section for [digital_share_low]: the shipped defaults "
        "apply (streams/policy.default.toml)"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="claimwatch.worker"), pytest.raises(Started):
        run.run_worker(load_policy(), Settings.from_env({"CLAIMWATCH_BROKER": "127.0.0.1:9"}))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
