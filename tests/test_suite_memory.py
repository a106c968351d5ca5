"""The suite's own memory figure (tests/conftest.py's _SuiteMemory): a process's PSS is
read again only when its file-backed pages moved or the processes changed, and the sum
stays the exact PSS within the slack."""
import os
import subprocess
import sys

import conftest

GROW = """
import mmap, sys
import numpy as np
held = [np.ones(48 * 2 ** 20 // 8)]           # 48 MiB of its own
print("ready", flush=True)
sys.stdin.readline()
held.append(np.ones(96 * 2 ** 20 // 8))       # 96 MiB more of its own
print("grown", flush=True)
sys.stdin.readline()
with open(sys.argv[1], "rb") as f:            # 64 MiB of a file, mapped and read
    mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    total = sum(mapped[i] for i in range(0, len(mapped), 4096))
print("mapped", flush=True)
sys.stdin.readline()
"""


def test_sampled_sum_is_the_pss_and_rereads_only_when_file_pages_move(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\1" * (64 * 2 ** 20))
    # (the tree sampled is a child's, not this worker's, whose memory moves on its own)
    child = subprocess.Popen([sys.executable, "-c", GROW, str(data)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def step(word):
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == word

    def exact():
        return conftest._pss_gib(child.pid)

    try:
        assert child.stdout.readline().strip() == "ready"
        memory = conftest._SuiteMemory(slack=1 / 64, refresh=1e9, root=child.pid)
        memory.sample()
        assert memory.reads == 1
        assert abs(memory.last - exact()) < 1 / 64
        before = memory.last
        step("grown")
        memory.sample()             # its own pages grew by 96 MiB: counted without a read
        assert memory.reads == 1
        assert abs(memory.last - exact()) < 1 / 64
        assert memory.last - before > 90 / 1024
        step("mapped")
        memory.sample()             # 64 MiB of file pages: its PSS is read again
        assert memory.reads == 2
        assert abs(memory.last - exact()) < 1 / 64
        assert memory.peak == memory.last
    finally:
        child.kill()
        child.wait()


def test_a_process_that_comes_or_goes_makes_every_size_read_anew():
    memory = conftest._SuiteMemory(refresh=1e9)
    memory.sample()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"],
                             stdin=subprocess.PIPE)
    try:
        before = memory.reads
        memory.sample()
        assert memory.reads - before == len(conftest._process_tree(memory.root))
    finally:
        child.kill()
        child.wait()


MAP = """
import mmap, subprocess, sys
def read_all(path):
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        sum(m[i] for i in range(0, len(m), 4096))
    return m
if sys.argv[2] == "first":           # maps the file, then starts the second one
    held = read_all(sys.argv[1])
    second = subprocess.Popen([sys.executable, __file__, sys.argv[1], "second"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    second.stdout.readline()
    print("ready", flush=True)
    sys.stdin.readline()
    second.stdin.write(chr(10))
    second.stdin.flush()
    print(second.stdout.readline().strip(), flush=True)
    sys.stdin.readline()
else:                                # maps the same file when told
    print("ready", flush=True)
    sys.stdin.readline()
    held = read_all(sys.argv[1])
    print("mapped", flush=True)
    sys.stdin.readline()
"""


def test_pages_one_process_maps_shrink_the_others_share(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"\1" * (64 * 2 ** 20))
    script = tmp_path / "map.py"
    script.write_text(MAP)
    first = subprocess.Popen([sys.executable, str(script), str(data), "first"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def exact():
        return sum(conftest._pss_gib(p) for p in conftest._process_tree(first.pid))

    try:
        assert first.stdout.readline().strip() == "ready"
        memory = conftest._SuiteMemory(slack=1 / 64, refresh=1e9, root=first.pid)
        memory.sample()
        assert memory.reads == 2 and abs(memory.last - exact()) < 2 / 64
        first.stdin.write("\n")
        first.stdin.flush()
        assert first.stdout.readline().strip() == "mapped"
        # the second process now holds half of the file's 64 MiB, the first one half
        # less: both are read again, and the sum stays what it was, not 32 MiB more
        before = memory.last
        memory.sample()
        assert memory.reads == 4
        assert abs(memory.last - exact()) < 2 / 64
        assert abs(memory.last - before) < 8 / 1024
    finally:
        for p in conftest._process_tree(first.pid)[::-1]:
            try:
                os.kill(p, 9)
            except OSError:
                pass
        first.wait()
