"""Fault injection for the Open Images downloader: ``python -m openimages download`` is
killed (SIGKILL) or interrupted (SIGINT, as Ctrl-C) at seeded random moments of a run
against the local stand-ins (a moto S3 bucket behind a throttling relay, a ranged HTTP
server for metadata and mask zips), then run again. After each kill the second run must
end with exactly the files of an uninterrupted reference run (same names, same bytes),
no temporary ``*.part*`` file anywhere, and fetch nothing again that the killed run had
completed (image keys, metadata files, zip indexes; mask bytes at most twice those of
the masks still missing). A SIGINT must stop the run within two seconds.

N kills per kind: 5 in the default suite, 20 with ``-m slow``; MRCNN_FAULT_KILLS sets N
for either, MRCNN_FAULT_SEED the moments. Run with ``-s`` to see the tallies:

    MRCNN_FAULT_KILLS=20 python -m pytest tests/faults/test_download_faults.py -m slow -s
"""
import os
import signal
import subprocess
import sys
import time
import zipfile
from urllib.parse import urlparse

import numpy as np
import pytest

from fake_openimages import ThrottleProxy, build_world, serve, start_s3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOG, PIZZA = "/m/0bt9lr", "/m/0663v"
S3_RATE = 1000000           # bytes per second per connection: images take ~1.5 s
HTTP_RATE = 400000          # metadata and zip ranges
SIGINT_LIMIT_S = 2.0        # Ctrl-C must stop the run within this


def ctrl_c_as_in_a_terminal():
    """Popen preexec_fn: SIGINT back to its default in the child. A test suite started in
    the background of a non-interactive shell runs with SIGINT ignored, and children
    inherit that, so Ctrl-C would never reach them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)



def kills(default):
    return int(os.environ.get("MRCNN_FAULT_KILLS", default))


@pytest.fixture(scope="module")
def servers(tmp_path_factory, openimages_sample):
    """The 10 real sample images and masks (Dog and Pizza: 7 images, 10 masks), zips
    padded with unrelated members, both servers slowed so a kill can land mid-transfer."""
    root = tmp_path_factory.mktemp("oi-faults")
    ids = sorted(f[:-4] for f in os.listdir(os.path.join(openimages_sample, "test-images")))
    uploads = build_world(root, openimages_sample, {"test": ids}, relabel={},
                          segmentation_mids=[DOG, PIZZA], decoy_bytes=20000)
    httpd, handler, url = serve(str(root), throttle=HTTP_RATE)
    s3server, endpoint, s3 = start_s3()
    for key, path in uploads["test"]:
        s3.upload_file(path, "open-images-dataset", key)
    target = urlparse(endpoint)
    proxy = ThrottleProxy(target.hostname, target.port, throttle=S3_RATE)
    yield {"meta": url + "/meta", "masks": url + "/masks", "s3": proxy.endpoint,
           "handler": handler, "proxy": proxy,
           "zip": str(root / "masks" / "test-masks" / "test-masks-0.zip")}
    proxy.close()
    s3server.stop()
    httpd.shutdown()


def command(servers, out):
    return [sys.executable, "-m", "openimages", "download", "--classes", "Dog", "Pizza",
            "--split", "test", "--out", str(out), "--workers", "2", "--quiet",
            "--metadata-url", servers["meta"], "--masks-url", servers["masks"],
            "--s3-endpoint", servers["s3"]]


def snapshot(out):
    """{relative path: bytes} of every file under out."""
    files = {}
    for d, _, names in os.walk(out):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                files[os.path.relpath(p, out)] = f.read()
    return files


def data_files(files):
    """The files a user reads: images, masks, annotations.csv (not the cache, not the
    manifest, whose times and byte counts differ from run to run)."""
    return {k: v for k, v in files.items() if ".part" not in k and (
        k.startswith(("images" + os.sep, "masks" + os.sep)) or k == "annotations.csv")}


class full_speed(object):
    """Lift both throttles while the block runs."""

    def __init__(self, servers):
        self.servers = servers

    def __enter__(self):
        self.servers["handler"].throttle = None
        self.servers["proxy"].throttle = None

    def __exit__(self, *exc):
        self.servers["handler"].throttle = HTTP_RATE
        self.servers["proxy"].throttle = S3_RATE


def clear_logs(servers):
    del servers["handler"].requests[:]
    del servers["proxy"].request_lines[:]


@pytest.fixture(scope="module")
def reference(servers, tmp_path_factory):
    """An uninterrupted run: its files, its manifest and how long it took."""
    import json
    out = tmp_path_factory.mktemp("reference") / "out"
    t0 = time.monotonic()
    res = subprocess.run(command(servers, out), capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    seconds = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-2000:]
    files = snapshot(out)
    with zipfile.ZipFile(servers["zip"]) as z:
        infos = sorted(z.infolist(), key=lambda i: i.header_offset)
        ends = [i.header_offset for i in infos[1:]] + [z.start_dir]
    spans = {i.filename: e - i.header_offset for i, e in zip(infos, ends)}
    return {"files": data_files(files), "seconds": seconds, "spans": spans,
            "images": sum(1 for k in files if k.startswith("images" + os.sep)),
            "manifest": json.loads(files["manifest.json"])}


def check_after_kill(out, ref):
    """Problems with the files a killed run left under their final names."""
    problems = []
    for name, data in data_files(snapshot(out) if os.path.isdir(out) else {}).items():
        if name == "annotations.csv":
            continue        # a killed run may leave the previous run's table
        if ref["files"].get(name) != data:
            problems.append("after the kill, {} is not the reference file".format(name))
    return problems


def rerun_and_check(servers, out, ref):
    """Run again to the end; returns (problems, wrong files, partial files left)."""
    import json
    before = {k: v for k, v in (snapshot(out) if os.path.isdir(out) else {}).items()
              if ".part" not in k}
    images_before = {k for k in before if k.startswith("images" + os.sep)}
    masks_before = {os.path.basename(k) for k in before if k.startswith("masks" + os.sep)}
    cache_before = {os.path.basename(k) for k in before if k.startswith(".cache" + os.sep)}
    clear_logs(servers)
    with full_speed(servers):           # only the killed runs need slow transfers
        res = subprocess.run(command(servers, out), capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
    problems = []
    if res.returncode != 0:
        problems.append("the rerun failed ({}): {}".format(res.returncode, res.stderr[-500:]))
    after = snapshot(out)
    data = data_files(after)
    wrong = sorted(set(data) ^ set(ref["files"])) + sorted(
        k for k in set(data) & set(ref["files"]) if data[k] != ref["files"][k])
    problems += ["wrong or missing file after the rerun: " + w for w in wrong]
    partial = sorted(k for k in after if ".part" in k)
    problems += ["partial file left: " + p for p in partial]
    # nothing complete is fetched again
    for line in servers["proxy"].request_lines:
        key = line.split(" ", 1)[1].split("/", 2)[-1]           # test/<id>.jpg
        if os.path.join("images", os.path.basename(key)) in images_before:
            problems.append("fetched again an image that was complete: " + key)
    requests = servers["handler"].requests
    for path, rng, _, _ in requests:
        if path.startswith("/meta/") and os.path.basename(path) in cache_before:
            problems.append("fetched again a metadata file that was complete: " + path)
    zip_requests = [r for r in requests if r[0].endswith(".zip")]
    if any(name.startswith("zipindex-") for name in cache_before) and \
            any((r[1] or "").startswith("bytes=-") for r in zip_requests):
        problems.append("fetched the zip's index again though it was cached")
    wanted = [n for n in ref["manifest_masks"] if n not in masks_before]
    member_bytes = sum(r[3] for r in zip_requests if not (r[1] or "").startswith("bytes=-"))
    if member_bytes > 2 * sum(ref["spans"][n] for n in wanted):
        problems.append("fetched {} bytes of masks for {} missing ones ({} bytes)".format(
            member_bytes, len(wanted), sum(ref["spans"][n] for n in wanted)))
    if res.returncode == 0:
        m = json.loads(after["manifest.json"])
        c, rc = m["counts"], ref["manifest"]["counts"]
        if (c["images"], c["masks"], c["per_class"]) != (rc["images"], rc["masks"],
                                                         rc["per_class"]) or \
                m.get("status") != "complete":
            problems.append("the manifest differs: {} {}".format(m.get("status"), c))
        if c.get("images_already_present") != len(images_before) or \
                c.get("masks_already_present") != len(masks_before):
            problems.append("the manifest's already-present counts are wrong: {}".format(c))
    return problems, len(wrong), len(partial)


def run_kills(servers, reference, tmp_path, sig, n, seed):
    ref = dict(reference, manifest_masks=[os.path.basename(k) for k in reference["files"]
                                          if k.startswith("masks" + os.sep)])
    rng = np.random.RandomState(seed)
    moments = rng.uniform(0.0, reference["seconds"], size=n)
    tally = {"kills": n, "survived": 0, "files_wrong": 0, "partial_left": 0,
             "slowest_stop_s": 0.0, "mid_images": 0, "left_parts": 0}
    problems = []
    for k, moment in enumerate(moments):
        out = tmp_path / "{}-{}".format(sig, k)
        clear_logs(servers)
        proc = subprocess.Popen(command(servers, out), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                preexec_fn=ctrl_c_as_in_a_terminal)
        time.sleep(moment)
        these = []
        proc.send_signal(getattr(signal, sig))
        t0 = time.monotonic()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            these.append("did not stop within 20 s")
        stopped = time.monotonic() - t0
        if sig == "SIGINT":
            tally["slowest_stop_s"] = max(tally["slowest_stop_s"], round(stopped, 2))
            if stopped > SIGINT_LIMIT_S:
                these.append("took {:.1f} s to stop: {}".format(stopped, err[-300:]))
        these += check_after_kill(out, ref)
        left = snapshot(out) if os.path.isdir(out) else {}
        images_left = sum(1 for k in left if k.startswith("images" + os.sep) and
                          ".part" not in k)
        tally["mid_images"] += 0 < images_left < reference["images"]
        tally["left_parts"] += any(".part" in k for k in left)
        found, wrong, partial = rerun_and_check(servers, out, ref)
        these += found
        tally["files_wrong"] += wrong
        tally["partial_left"] += partial
        if these:
            problems += ["{} at {:.2f} s: {}".format(sig, moment, p) for p in these]
        else:
            tally["survived"] += 1
    print("\ndownloader {}: {} of {} kills survived, {} files wrong, {} partial files left"
          "{}; {} kills landed among the image downloads, {} left temporary files for the "
          "rerun to clean (reference run {:.1f} s, seed {})".format(
              sig, tally["survived"], n, tally["files_wrong"], tally["partial_left"],
              ", slowest stop {:.2f} s".format(tally["slowest_stop_s"])
              if sig == "SIGINT" else "", tally["mid_images"], tally["left_parts"],
              reference["seconds"], seed))
    return tally, problems


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_download_survives_kills_at_random_moments(servers, reference, tmp_path, sig):
    seed = int(os.environ.get("MRCNN_FAULT_SEED", "0")) + (sig == "SIGINT")
    tally, problems = run_kills(servers, reference, tmp_path, sig, kills(5), seed)
    assert not problems, "\n".join(problems[:20])
    assert tally["survived"] == tally["kills"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_download_survives_twenty_kills_at_random_moments(servers, reference, tmp_path, sig):
    seed = int(os.environ.get("MRCNN_FAULT_SEED", "0")) + 100 + (sig == "SIGINT")
    tally, problems = run_kills(servers, reference, tmp_path, sig, kills(20), seed)
    assert not problems, "\n".join(problems[:20])
    assert tally["survived"] == tally["kills"]
