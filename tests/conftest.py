import fcntl
import gc
import json
import os
import resource
import sys
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests build and free many models. TensorFlow's oneDNN build keeps tensors in a
# pool (MklCPUAllocator, a BFC pool) that never shrinks, so each worker held the peak
# of its largest model until it ended (a ResNet-50 training run left 1.0 GiB behind);
# with the system allocator a freed model's memory goes back (0.1 GiB left): the suite's
# peak 4.7-4.9 -> 3.9 GiB. Not the library's default: for real training the pool is
# faster and leaner (bench/RESULTS.md). Inherited by the processes tests start.
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.abspath(os.path.join(ROOT, "..", "shared", "data"))
_STARTED = time.monotonic()


@pytest.fixture(autouse=True)
def _log_test_start(request):
    """With MRCNN_TEST_MEMORY_LOG set: when each test starts, in which process (to read
    beside the memory samples of the same file)."""
    log = os.environ.get("MRCNN_TEST_MEMORY_LOG")
    if log:
        with open(log, "a") as f:
            f.write("{:.1f} test {} {}\n".format(time.monotonic() - _STARTED, os.getpid(),
                                                request.node.nodeid))
    yield


@pytest.fixture(autouse=True, scope="module")
def _free_models_after_each_file():
    """Models built by one test file (module fixtures included) are freed before the
    next file builds its own: Keras keeps every layer name in its global state."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()


# The files that take longest (20 s to two minutes each on 2 cores; longest first) start
# first, so that the two xdist workers of scripts/test.sh finish together instead of one
# waiting for the other's last long file. The rest keep their collection order.
LONGEST_FILES = ("test_training.py", "test_cli.py", "test_export.py",
                 "test_training_faults.py", "test_sample_traffic.py", "test_sample_coco.py",
                 "test_download_faults.py", "test_openimages.py", "test_docs.py",
                 "test_precision.py", "test_training_reliability.py",
                 "test_training_outputs.py", "test_tracking.py")


# Files whose tests start more TensorFlow processes (the web demo's server and a browser;
# a two-worker cluster) go first of all, while the workers are still small: later, with
# each worker at its largest model, they made the peak of the whole run.
FIRST_FILES = ("test_demo_browser.py", "test_multiworker.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST_FILES + LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _peak_gib(who):
    return resource.getrusage(who).ru_maxrss / 2 ** 20    # Linux: KiB


def _process_tree(root):
    """root and every process descended from it (from /proc)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(name)) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _pss_gib(pid):
    """A process's proportional set size: its private pages, and its share of the pages
    it shares (TensorFlow's libraries, about 0.55 GiB, are in every worker's RSS)."""
    try:
        with open("/proc/{}/smaps_rollup".format(pid)) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _resident_gib(pid):
    """(anonymous, file-backed) resident GiB of a process, from /proc/<pid>/statm: cheap,
    where reading its PSS walks its page tables."""
    try:
        with open("/proc/{}/statm".format(pid)) as f:
            resident, shared = (int(v) for v in f.read().split()[1:3])
    except (OSError, ValueError):
        return 0.0, 0.0
    return (resident - shared) * _PAGE / 2 ** 30, shared * _PAGE / 2 ** 30


class _SuiteMemory(threading.Thread):
    """The memory the whole test run holds at once: the sum of the PSS of pytest, its
    xdist workers and every process a test starts, sampled twice a second; ``peak`` is
    the largest sum seen.

    Reading every process's PSS at each sample was slow: the kernel walks each worker's
    page tables (bench/RESULTS.md, test-suite-sampler). The processes' PSS are read
    again only when a process came or went, when one's file-backed resident pages
    (libraries, shared by all) moved by more than ``slack`` GiB (either changes how the
    shared pages are split among them), or every ``refresh`` seconds; in between each
    is its last read plus the change of its anonymous resident pages (its own), so a
    sum is within ``slack`` per process of the truth."""

    def __init__(self, interval=0.5, slack=1 / 64, refresh=15.0, root=None):
        super().__init__(name="suite-memory", daemon=True)
        self.root = root or os.getpid()
        self.interval = interval
        self.slack = slack
        self.refresh = refresh
        self.peak = self.last = 0.0
        self.reads = self.samples = 0
        self._known = {}          # pid -> (anonymous, file-backed, PSS) at its last read
        self._refreshed = 0.0
        self.stopped = threading.Event()

    def _sizes(self, pids):
        now = time.monotonic()
        resident = {pid: _resident_gib(pid) for pid in pids}
        # (file pages one process maps or drops change the others' shares of them)
        if (set(pids) != set(self._known) or now - self._refreshed > self.refresh
                or any(abs(files - self._known[pid][1]) > self.slack
                       for pid, (_, files) in resident.items())):
            self._refreshed = now
            self._known = {pid: (anonymous, files, _pss_gib(pid))
                           for pid, (anonymous, files) in resident.items()}
            self.reads += len(pids)
        return [(pid, max(0.0, pss + resident[pid][0] - anonymous))
                for pid, (anonymous, _, pss) in self._known.items()]

    def sample(self):
        sizes = self._sizes(_process_tree(self.root))
        self.samples += 1
        total = self.last = sum(size for _, size in sizes)
        self.peak = max(self.peak, total)
        log = os.environ.get("MRCNN_TEST_MEMORY_LOG")
        if log:   # where the peak comes from: seconds, total, pid:GiB of each process
            with open(log, "a") as f:
                f.write("{:.1f} {:.2f} {}\n".format(
                    time.monotonic() - _STARTED, total,
                    " ".join("{}:{:.2f}".format(p, size) for p, size in sizes if size > 0.05)))

    def run(self):
        while not self.stopped.wait(self.interval):
            self.sample()

    def stop(self):
        self.stopped.set()
        self.join(timeout=5)
        self.sample()


_MEMORY = None


def pytest_configure(config):
    global _MEMORY
    if not hasattr(config, "workerinput") and os.path.isfile("/proc/self/smaps_rollup"):
        _MEMORY = _SuiteMemory()
        _MEMORY.start()


def pytest_sessionfinish(session):
    """An xdist worker hands its peak memory to the controller's summary."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["peak_rss_gib"] = _peak_gib(resource.RUSAGE_SELF)


_WORKER_PEAKS = {}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {})
    if "peak_rss_gib" in output:
        _WORKER_PEAKS[getattr(getattr(node, "gateway", None), "id", len(_WORKER_PEAKS))] = \
            output["peak_rss_gib"]


def pytest_terminal_summary(terminalreporter):
    """The suite's wall time and peak memory, printed at the end of every run: the
    largest sum of the PSS of all its processes (workers and the processes tests start
    included; shared library pages counted once, not once per process), and each
    process's or xdist worker's own peak RSS (shared pages included)."""
    wall = time.monotonic() - _STARTED
    total = ""
    if _MEMORY is not None:
        _MEMORY.stop()
        total = ", peak memory of all its processes {:.2f} GiB (PSS)".format(_MEMORY.peak)
    if _WORKER_PEAKS:
        peaks = [_WORKER_PEAKS[k] for k in sorted(_WORKER_PEAKS)]
        terminalreporter.write_line(
            "suite: {:.0f} s wall, {} workers{}; peak RSS per worker {} GiB".format(
                wall, len(peaks), total, " / ".join("{:.2f}".format(p) for p in peaks)))
    else:
        terminalreporter.write_line("suite: {:.0f} s wall{}; peak RSS {:.2f} GiB".format(
            wall, total, _peak_gib(resource.RUSAGE_SELF)))


def shared_run_dir(tmp_path_factory):
    """A folder every xdist worker of this run sees (the base temp folder's parent under
    xdist, the base temp folder otherwise): for results built once per run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name, build):
    """``build(folder)`` runs once per test run, whichever worker asks first; the others
    wait for it and get its JSON-able result."""
    root = shared_run_dir(tmp_path_factory)
    folder = root / name
    done = root / (name + ".json")
    with open(str(root / (name + ".lock")), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                folder.mkdir(exist_ok=True)
                result = build(str(folder))
                done.write_text(json.dumps(result))
            return json.loads(done.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def shared_path(*parts):
    """Path under ../shared/data, or skip the test with a clear message."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip("needs the real data at {} (../shared/data is missing on this machine)"
                    .format(path))
    return path


@pytest.fixture(scope="session")
def coco_sample():
    return shared_path("coco_val2017_sample")


@pytest.fixture
def rng():
    return np.random.RandomState(0)


@pytest.fixture(scope="session")
def openimages_sample():
    return shared_path("openimages_sample")


@pytest.fixture(scope="session")
def nucleus_sample():
    return shared_path("nucleus_dsb2018", "stage1_test")


@pytest.fixture(scope="session")
def tiny_shapes_weights(tmp_path_factory):
    """A TinyShapesConfig checkpoint trained for one short epoch (about half a minute),
    with class_names.json beside it: the model the export and demo tests serve."""
    from tiny_configs import train_tiny_shapes
    return built_once(tmp_path_factory, "tinyshapes", train_tiny_shapes)
