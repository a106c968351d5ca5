"""The Open Images subset downloader against real local servers: a moto S3 server
(the image bucket) and an HTTP server with Range support (metadata and mask zips),
with fixtures built from the real files in ../shared/data/openimages_sample."""
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from fake_openimages import mask_box, serve, start_s3  # local servers
from openimages import download as dl
from openimages.classes import ClassCatalog, UnknownClassError
from openimages.rangezip import parse_central_directory, parse_end_records

DOG, PIZZA, PERSON, WOMAN = "/m/0bt9lr", "/m/0663v", "/m/01g317", "/m/03bt1vf"
SYNTHETIC_WOMAN = "00d5eb460eab4613_m03bt1vf_deadbeef.png"


def ctrl_c_as_in_a_terminal():
    """Popen preexec_fn: SIGINT back to its default in the child. A test suite started in
    the background of a non-interactive shell runs with SIGINT ignored, and children
    inherit that, so Ctrl-C would never reach them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def world(tmp_path_factory, openimages_sample):
    """Metadata, zips and a bucket laid out like Open Images, served locally."""
    sample = openimages_sample
    root = tmp_path_factory.mktemp("oi-server")
    meta = root / "meta"
    meta.mkdir()
    shutil.copy(os.path.join(sample, "class-descriptions-boxable.csv"), meta)
    shutil.copy(os.path.join(sample, "bbox_labels_600_hierarchy.json"), meta)
    (meta / "classes-segmentation.txt").write_text("\n".join([DOG, PIZZA, PERSON, WOMAN,
                                                             "/m/04yx4"]) + "\n")
    mask_dir = os.path.join(sample, "test-masks")
    masks = sorted(os.listdir(mask_dir))
    # one synthetic subclass instance (Woman) on an image that has no real mask
    woman = np.zeros((600, 900), np.uint8)
    woman[100:400, 200:500] = 255
    woman_png = io.BytesIO()
    Image.fromarray(woman).convert("1").save(woman_png, format="PNG")

    rows = []
    for name in masks:
        image_id, mid, box_id = name[:-4].split("_")
        label = "/m/" + mid[1:]
        x1, x2, y1, y2 = mask_box(os.path.join(mask_dir, name))
        rows.append([name, image_id, label, box_id, x1, x2, y1, y2, "0.9", ""])
    rows.append([SYNTHETIC_WOMAN, "00d5eb460eab4613", WOMAN, "deadbeef",
                 200 / 900, 500 / 900, 100 / 600, 400 / 600, "0.8", ""])
    # decoys: other classes ("Dog bed", "Hot dog") and another split's rows
    rows.append(["1111111111111111_m0h8n6f9_aaaa.png", "1111111111111111", "/m/0h8n6f9",
                 "aaaa", 0.1, 0.2, 0.1, 0.2, "0.5", ""])
    rows.append(["2222222222222222_m01b9xk_bbbb.png", "2222222222222222", "/m/01b9xk",
                 "bbbb", 0.1, 0.2, 0.1, 0.2, "0.5", ""])
    header = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax", "BoxYMin",
              "BoxYMax", "PredictedIoU", "Clicks"]
    for split, these in (("test", rows), ("validation", rows[-2:])):
        with open(meta / "{}-annotations-object-segmentation.csv".format(split), "w",
                  newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(these)
    # box CSV: every masked instance has a box, plus one Dog box without a mask
    with open(meta / "test-annotations-bbox.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin",
                    "YMax", "IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction",
                    "IsInside"])
        for r in rows:
            w.writerow([r[1], "human", r[2], 1, r[4], r[5], r[6], r[7], 0, 0, 0, 0, 0])
        w.writerow(["00a1ab47b5439e8c", "human", DOG, 1, 0.5, 0.6, 0.5, 0.6, 0, 0, 0, 0, 0])

    # mask zips: the real members among many decoys (zip64: > 65535 members in "0")
    zips = root / "masks" / "test-masks"
    zips.mkdir(parents=True)
    rng = np.random.RandomState(0)
    with zipfile.ZipFile(zips / "test-masks-0.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for k in range(33000):
            z.writestr("0{:015x}_m0decoy_{:08x}.png".format(k, k), b"x")
        for name in masks:
            z.write(os.path.join(mask_dir, name), name)
        z.writestr(SYNTHETIC_WOMAN, woman_png.getvalue())
        for k in range(33000, 66000):
            z.writestr("0{:015x}_m0decoy_{:08x}.png".format(k, k), b"x")
        for k in range(300):  # bulky decoys: the zip is mostly bytes nobody wants
            z.writestr("0big{:012x}_m0decoy_x.png".format(k), rng.bytes(150000),
                       compress_type=zipfile.ZIP_STORED)
    with zipfile.ZipFile(zips / "test-masks-1.zip", "w") as z:
        z.writestr("1111111111111111_m0h8n6f9_aaaa.png", rng.bytes(5000))

    httpd, handler, url = serve(str(root))
    httpd_norange, handler_norange, url_norange = serve(str(root), ranges=False)

    s3server, endpoint, s3 = start_s3()
    image_dir = os.path.join(sample, "test-images")
    for name in os.listdir(image_dir):
        s3.upload_file(os.path.join(image_dir, name), "open-images-dataset", "test/" + name,
                       ExtraArgs={"ACL": "public-read"})
    s3.put_object(Bucket="open-images-dataset", Key="train/ffffffffffffffff.jpg", Body=b"decoy")
    yield {"meta": url + "/meta", "masks": url + "/masks", "masks_norange": url_norange + "/masks",
           "meta_norange": url_norange + "/meta", "s3": endpoint, "s3client": s3,
           "handler": handler, "handler_norange": handler_norange,
           "zip0": str(zips / "test-masks-0.zip"), "sample": sample, "masks_list": masks}
    s3server.stop()
    httpd.shutdown()
    httpd_norange.shutdown()


def run(world, out, classes, norange=False, **kw):
    kw.setdefault("workers", 4)
    return dl.download(classes, "test", str(out),
                       metadata_url=world["meta_norange" if norange else "meta"],
                       masks_url=world["masks_norange" if norange else "masks"],
                       s3_endpoint=world["s3"], progress=False, **kw)


# ---------------------------------------------------------------- tests

def test_catalog_exact_names_mids_hierarchy_and_close_matches(world):
    meta = os.path.join(world["sample"])
    cat = ClassCatalog.from_files(os.path.join(meta, "class-descriptions-boxable.csv"),
                                  os.path.join(meta, "bbox_labels_600_hierarchy.json"))
    assert cat.resolve("dog") == DOG and cat.resolve("DOG") == DOG
    assert cat.resolve(DOG) == DOG
    assert cat.expand(DOG) == [DOG]               # "Dog bed", "Hot dog" are not pulled in
    assert set(cat.expand(PERSON)) == {PERSON, "/m/04yx4", WOMAN, "/m/01bl7v", "/m/05r655"}
    assert cat.expand(PERSON, subclasses=False) == [PERSON]
    assert set(cat.expand(cat.resolve("Car"))) >= {cat.resolve("Car"), cat.resolve("Limousine"),
                                                   cat.resolve("Van")}
    assert cat.resolve("Stop sign") in cat.expand(cat.resolve("Traffic sign"))
    with pytest.raises(UnknownClassError, match=r"'Dgo'.*'Dog'"):
        cat.resolve("Dgo")


def test_one_class_subset_gets_exactly_its_images_and_masks(world, tmp_path):
    world["handler"].log.clear()
    out = tmp_path / "dogs"
    m = run(world, out, ["Dog"], with_boxes=True)
    dog_masks = [n for n in world["masks_list"] if "_m0bt9lr_" in n]
    dog_images = sorted({n.split("_")[0] for n in dog_masks})
    assert sorted(os.listdir(out / "images")) == [i + ".jpg" for i in dog_images]
    assert sorted(os.listdir(out / "masks")) == sorted(dog_masks)
    # masks are resized to their image's size (the originals differ)
    resized = 0
    for name in dog_masks:
        with Image.open(out / "masks" / name) as mk, \
                Image.open(out / "images" / (name.split("_")[0] + ".jpg")) as im:
            assert mk.size == im.size
        with Image.open(os.path.join(world["sample"], "test-masks", name)) as orig:
            resized += orig.size != mk.size
    assert resized > 0
    rows = list(csv.DictReader(open(out / "annotations.csv")))
    assert len(rows) == len(dog_masks)
    assert {r["ClassName"] for r in rows} == {"Dog"}
    assert all(os.path.exists(out / r["MaskPath"]) for r in rows)
    assert m["counts"]["images"] == len(dog_images) and m["counts"]["masks"] == len(dog_masks)
    assert m["images_with_boxes_without_masks"] == {"00a1ab47b5439e8c": 1}
    assert json.load(open(out / "manifest.json"))["classes"][0]["mid"] == DOG


def test_mask_bytes_are_a_small_part_of_the_zip(world, tmp_path):
    world["handler"].log.clear()
    m = run(world, tmp_path / "pizza", ["Pizza"])
    zip_size = os.path.getsize(world["zip0"])
    fetched = sum(n for path, n in world["handler"].log if path.endswith(".zip"))
    assert fetched == m["bytes_downloaded"]["masks"]
    assert fetched < zip_size / 4, (fetched, zip_size)
    assert m["mask_zips"][0]["whole_zip"] is False
    # a second subset reuses the cached central-directory index: only member bytes
    world["handler"].log.clear()
    cache = tmp_path / "pizza" / ".cache"
    out2 = tmp_path / "again"
    shutil.copytree(cache, out2 / ".cache")
    run(world, out2, ["Pizza"])
    again = sum(n for path, n in world["handler"].log if path.endswith(".zip"))
    assert again < zip_size / 100       # the members alone


def test_subclass_instances_are_labelled_as_the_requested_class(world, tmp_path):
    out = tmp_path / "people"
    m = run(world, out, ["person"])
    rows = list(csv.DictReader(open(out / "annotations.csv")))
    assert [(r["ClassName"], r["LabelName"], r["SourceLabelName"]) for r in rows] == \
        [("Person", PERSON, WOMAN)]
    assert m["classes"][0]["name"] == "Person"
    # without subclasses nothing matches: an error that says so (issue 16), and a manifest
    with pytest.raises(dl.EmptySubsetError, match="no image of the test split has a mask "
                                                  "of Person"):
        run(world, tmp_path / "nosub", ["Person"], subclasses=False)
    none = json.load(open(tmp_path / "nosub" / "manifest.json"))
    assert none["counts"]["masks"] == 0
    assert none["shortfall"] == {} and none["counts"]["images"] == 0


def test_limit_per_class_seed_and_shortfall(world, tmp_path):
    a = run(world, tmp_path / "a", ["Dog"], limit_per_class=2, seed=1)
    b = run(world, tmp_path / "b", ["Dog"], limit_per_class=2, seed=1)
    assert sorted(os.listdir(tmp_path / "a" / "images")) == \
        sorted(os.listdir(tmp_path / "b" / "images"))
    assert a["counts"]["images"] == 2
    c = run(world, tmp_path / "c", ["Pizza"], limit_per_class=10)
    assert c["shortfall"] == {"Pizza": {"wanted": 10, "available": 3}}


def test_interrupted_run_resumes_without_refetching(world, tmp_path, monkeypatch):
    out = tmp_path / "resume"
    real_get = None
    calls = {"n": 0}
    original = dl.make_s3_client

    def flaky_client(*args, **kwargs):
        client = original(*args, **kwargs)
        nonlocal real_get
        real_get = client.get_object

        def get_object(**kw):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt("simulated crash mid-way")
            return real_get(**kw)
        client.get_object = get_object
        return client
    monkeypatch.setattr(dl, "make_s3_client", flaky_client)
    with pytest.raises(KeyboardInterrupt):
        run(world, out, ["Dog", "Pizza"], workers=1)
    done_before = sorted(os.listdir(out / "images"))
    assert 0 < len(done_before) < 7
    assert not [f for f in done_before if ".part" in f]
    monkeypatch.setattr(dl, "make_s3_client", original)
    world["handler"].log.clear()
    m = run(world, out, ["Dog", "Pizza"], workers=1)
    assert m["counts"]["images_already_present"] == len(done_before)
    assert m["counts"]["images"] == 7


def test_truncated_image_is_detected_and_fetched_again(world, tmp_path):
    out = tmp_path / "trunc"
    run(world, out, ["Pizza"])
    victim = sorted((out / "images").iterdir())[0]
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])
    m = run(world, out, ["Pizza"])
    assert victim.read_bytes() == good
    assert m["counts"]["images_already_present"] == 2


def test_server_without_range_support_falls_back_to_the_whole_zip(world, tmp_path):
    out = tmp_path / "norange"
    m = run(world, out, ["Dog"], norange=True)
    assert m["mask_zips"][0]["whole_zip"] is True
    assert m["bytes_downloaded"]["masks"] >= os.path.getsize(world["zip0"])
    assert len(os.listdir(out / "masks")) == 5


def test_zip64_central_directory_is_parsed(world):
    with open(world["zip0"], "rb") as f:
        data = f.read()
    offset, size, count = parse_end_records(data[-70000:], len(data))
    assert count > 65535          # the zip64 record was needed and read
    entries = parse_central_directory(data[offset:offset + size])
    with zipfile.ZipFile(world["zip0"]) as z:
        info = z.getinfo(world["masks_list"][0])
    assert entries[info.filename][0] == info.header_offset


def test_unknown_class_error_lists_close_names(world, tmp_path):
    with pytest.raises(UnknownClassError, match="closest names"):
        run(world, tmp_path / "x", ["Dgo"])


def test_openimages_dataset_and_coco_export(world, tmp_path):
    pytest.importorskip("tensorflow")
    from pycocotools.coco import COCO

    from mrcnn.datasets import load_coco
    from openimages.coco_export import export_coco
    from openimages.dataset import OpenImagesDataset
    out = tmp_path / "both"
    run(world, out, ["Dog", "Pizza"])
    d = OpenImagesDataset()
    d.load_dataset(str(out), None, ["dog", "Pizza"])
    d.prepare()
    assert d.class_names == ["BG", "Dog", "Pizza"]
    assert d.num_images == 7 and d.image_ids.tolist() == list(range(7))
    total = 0
    for i in d.image_ids:
        image = d.load_image(i)
        mask, ids = d.load_mask_checked(i, image_shape=image.shape)
        assert mask.shape[:2] == image.shape[:2]
        total += len(ids)
        assert len(d.image_reference(i)) == 16
    assert total == 10
    path = export_coco(str(out))
    coco = COCO(path)
    assert len(coco.getImgIds()) == 7 and len(coco.getAnnIds()) == 10
    back = load_coco(path, str(out / "images"))
    assert back.num_images == 7


def test_cli_runs_and_downloader_does_not_import_tensorflow(world, tmp_path):
    out = tmp_path / "cli"
    code = ("import sys; from openimages.__main__ import main; "
            "rc = main(sys.argv[1:]); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; sys.exit(rc)")
    cmd = [sys.executable, "-c", code, "download", "--classes", "Pizza", "--split", "test",
           "--out", str(out), "--workers", "2", "--metadata-url", world["meta"],
           "--masks-url", world["masks"], "--s3-endpoint", world["s3"], "--coco", "--quiet"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (out / "coco.json").exists() and (out / "manifest.json").exists()
    bad = subprocess.run(cmd[:3] + ["download", "--classes", "Dgo", "--out", str(out),
                                    "--metadata-url", world["meta"]],
                         capture_output=True, text=True, cwd=root)
    assert bad.returncode == 2 and "closest names" in bad.stderr


def test_class_without_segmentation_masks_is_warned_about(world, tmp_path):
    m = run(world, tmp_path / "tortoise", ["Tortoise", "Pizza"])
    assert m["counts"]["images"] == 3
    assert any("no segmentation masks" in w and "Tortoise" in w for w in m["warnings"])


# ---------------------------------------------------------------- issue 16: faults, resume, names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def closed_port_url():
    """An http URL where nothing listens (connection refused)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:{}".format(port)


class fault(object):
    """Make the fixture answer ``status`` for ``path`` while the block runs."""

    def __init__(self, world, path, status):
        self.handler, self.path, self.status = world["handler"], path, status

    def __enter__(self):
        self.handler.faults[self.path] = self.status
        del self.handler.requests[:]
        return self

    def count(self):
        return sum(1 for r in self.handler.requests if r[0] == self.path)

    def __exit__(self, *exc):
        self.handler.faults.pop(self.path, None)


def cli(world, out, *extra, classes=("Dog", "Pizza"), meta=None, masks=None, s3=None,
        timeout=120):
    cmd = [sys.executable, "-m", "openimages", "download", "--classes"] + list(classes) + [
        "--split", "test", "--out", str(out), "--workers", "2", "--quiet",
        "--metadata-url", meta or world["meta"], "--masks-url", masks or world["masks"],
        "--s3-endpoint", s3 or world["s3"]] + list(extra)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def part_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, files in os.walk(folder) for f in files if ".part" in f)


def test_ctrl_c_during_image_downloads_stops_at_once_and_says_how_to_resume(world, tmp_path):
    import time
    from urllib.parse import urlparse

    from fake_openimages import ThrottleProxy
    s3 = urlparse(world["s3"])
    proxy = ThrottleProxy(s3.hostname, s3.port, throttle=100000)   # 100 kB/s a connection
    out = tmp_path / "ctrl-c"
    cmd = [sys.executable, "-m", "openimages", "download", "--classes", "Dog", "Pizza",
           "--split", "test", "--out", str(out), "--workers", "2", "--quiet",
           "--metadata-url", world["meta"], "--masks-url", world["masks"],
           "--s3-endpoint", proxy.endpoint]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 60
        while not (out / "images").is_dir() or not any(
                f.endswith(".jpg") for f in os.listdir(out / "images")):
            assert proc.poll() is None and time.monotonic() < deadline, "no image came down"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        t0 = time.monotonic()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        proxy.close()
    # 7 images of ~330 kB at 2 x 100 kB/s: 11 s to finish them; it must not wait for that
    assert stopped_in < 2.0, (stopped_in, err[-1500:])
    assert proc.returncode == 130, err[-1500:]
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and "run the same command again" in lines[0], err[-1500:]
    images = sorted(os.listdir(out / "images"))
    assert 0 < len(images) < 7
    for name in images:     # every file under its final name is whole
        assert (out / "images" / name).read_bytes() == open(
            os.path.join(world["sample"], "test-images", name), "rb").read()
    assert part_files(out) == []
    assert json.load(open(out / "manifest.json"))["status"] == "interrupted"


def test_metadata_connection_error_is_one_download_error_naming_the_url(world, tmp_path):
    url = closed_port_url() + "/meta"
    with pytest.raises(dl.DownloadError) as e:
        dl.download(["Dog"], "test", str(tmp_path / "x"), metadata_url=url,
                    masks_url=world["masks"], s3_endpoint=world["s3"], progress=False,
                    retries=1, retry_backoff=0)
    msg = str(e.value)
    assert url + "/class-descriptions-boxable.csv" in msg and "\n" not in msg, msg
    assert e.value.url == url + "/class-descriptions-boxable.csv"
    assert "run the same command" not in msg         # the command line adds that
    manifest = json.load(open(tmp_path / "x" / "manifest.json"))
    assert manifest["status"] == "failed"
    assert manifest["error"].startswith(url + "/class-descriptions-boxable.csv: connection "
                                        "refused (after 2 tries)")


def test_permanent_http_errors_are_not_retried_but_transient_ones_are(world, tmp_path):
    path = "/meta/test-annotations-object-segmentation.csv"
    for status, tries in ((404, 1), (403, 1), (410, 1), (503, 3), (429, 3)):
        with fault(world, path, status) as f:
            with pytest.raises(dl.DownloadError, match="HTTP {}".format(status)) as e:
                run(world, tmp_path / "x{}".format(status), ["Dog"], retries=2,
                    retry_backoff=0)
            assert f.count() == tries, (status, f.count())
        assert e.value.url == world["meta"] + path[len("/meta"):]


def test_missing_image_is_tried_once_and_the_others_come_down(world, tmp_path, monkeypatch):
    victim = "00b68ff0919c939a"
    s3 = world["s3client"]
    original = dl.make_s3_client
    calls = []

    def counting_client(*args, **kwargs):
        client = original(*args, **kwargs)
        real = client.get_object

        def get_object(**kw):
            calls.append(kw["Key"])
            return real(**kw)
        client.get_object = get_object
        return client
    monkeypatch.setattr(dl, "make_s3_client", counting_client)
    s3.delete_object(Bucket="open-images-dataset", Key="test/{}.jpg".format(victim))
    try:
        with pytest.raises(dl.DownloadError) as e:
            run(world, tmp_path / "gone", ["Dog"], retry_backoff=0)
    finally:
        s3.upload_file(os.path.join(world["sample"], "test-images", victim + ".jpg"),
                       "open-images-dataset", "test/{}.jpg".format(victim))
    assert calls.count("test/{}.jpg".format(victim)) == 1
    assert "s3://open-images-dataset/test/{}.jpg".format(victim) in str(e.value)
    assert len(os.listdir(tmp_path / "gone" / "images")) == 3      # of the 4 Dog images
    manifest = json.load(open(tmp_path / "gone" / "manifest.json"))
    assert manifest["status"] == "incomplete" and manifest["counts"]["images"] == 3


def test_mask_zip_error_keeps_the_images_and_writes_the_manifest(world, tmp_path):
    out = tmp_path / "zipfail"
    zip_path = "/masks/test-masks/test-masks-0.zip"
    with fault(world, zip_path, 503) as f:
        with pytest.raises(dl.DownloadError) as e:
            run(world, out, ["Pizza"], retries=1, retry_backoff=0)
        assert f.count() == 2
    assert world["masks"] + zip_path[len("/masks"):] in str(e.value)
    assert "\n" not in str(e.value)
    assert len(os.listdir(out / "images")) == 3
    manifest = json.load(open(out / "manifest.json"))
    assert manifest["status"] == "failed"
    assert manifest["counts"]["images"] == 3 and manifest["counts"]["masks"] == 0


def test_cli_network_errors_print_one_line_with_the_url_and_exit_2(world, tmp_path):
    path = "/meta/test-annotations-object-segmentation.csv"
    with fault(world, path, 410):
        res = cli(world, tmp_path / "cli410")
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(lines) == 1, res.stderr[-2000:]
    assert world["meta"] + path[len("/meta"):] in lines[0] and "HTTP 410" in lines[0]
    assert "run the same command again to resume" in lines[0]
    # connection refused, through the console script when it is installed
    script = os.path.join(os.path.dirname(sys.executable), "openimages-download")
    url = closed_port_url() + "/meta"
    args = ["download", "--classes", "Dog", "--split", "test", "--out",
            str(tmp_path / "cli-refused"), "--metadata-url", url, "--retries", "0", "--quiet"]
    cmd = [script] + args if os.path.exists(script) else \
        [sys.executable, "-c", "import sys; from openimages.__main__ import main; "
                               "sys.exit(main())"] + args
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-2000:]
    assert url + "/class-descriptions-boxable.csv" in lines[0]
    assert "run the same command again to resume" in lines[0]


def test_traffic_sample_download_error_stays_one_line(world, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from samples.traffic import train as traffic
    path = "/meta/train-annotations-object-segmentation.csv"
    with fault(world, path, 410):
        with pytest.raises(SystemExit) as e:
            traffic.main(["download", "--out", str(tmp_path / "traffic"), "--splits", "train",
                          "--metadata-url", world["meta"], "--masks-url", world["masks"],
                          "--s3-endpoint", world["s3"], "--quiet"])
    assert e.value.code == 2
    lines = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(lines) == 1 and world["meta"] + path[len("/meta"):] in lines[0], lines
    assert "run the same command again" in lines[0].lower()


def test_run_where_no_class_has_masks_fails_and_says_why(world, tmp_path):
    with pytest.raises(dl.EmptySubsetError, match="Tortoise.*no segmentation masks"):
        run(world, tmp_path / "tortoise", ["Tortoise"])
    manifest = json.load(open(tmp_path / "tortoise" / "manifest.json"))
    assert manifest["status"] == "empty" and manifest["counts"]["images"] == 0
    res = cli(world, tmp_path / "tortoise-cli", classes=("Tortoise",))
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert res.returncode == 2 and "Tortoise" in lines[-1] and "no segmentation masks" in \
        lines[-1], res.stderr[-2000:]
    # with a class that has masks, the run succeeds and still says so at the end
    res = cli(world, tmp_path / "pizza-tortoise", classes=("Pizza", "Tortoise"))
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Tortoise" in lines[-1] and "no segmentation masks" in lines[-1]


def interrupt_after(monkeypatch, n_calls):
    """The n-th image request raises KeyboardInterrupt (a Ctrl-C mid-run)."""
    original = dl.make_s3_client
    calls = {"n": 0}

    def flaky_client(*args, **kwargs):
        client = original(*args, **kwargs)
        real = client.get_object

        def get_object(**kw):
            calls["n"] += 1
            if calls["n"] == n_calls:
                raise KeyboardInterrupt("simulated Ctrl-C")
            return real(**kw)
        client.get_object = get_object
        return client
    monkeypatch.setattr(dl, "make_s3_client", flaky_client)
    return lambda: monkeypatch.setattr(dl, "make_s3_client", original)


def test_manifest_counts_and_bytes_cover_every_run_after_a_resume(world, tmp_path, monkeypatch):
    out = tmp_path / "cumulative"
    restore = interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        run(world, out, ["Dog", "Pizza"], workers=1)
    restore()
    before = len(os.listdir(out / "images"))
    m = run(world, out, ["Dog", "Pizza"], workers=1)
    image_bytes = sum(os.path.getsize(out / "images" / f) for f in os.listdir(out / "images"))
    mask_bytes = sum(os.path.getsize(out / "masks" / f) for f in os.listdir(out / "masks"))
    c = m["counts"]
    assert (c["images"], c["masks"]) == (7, 10)
    assert c["images_already_present"] == before and c["images_downloaded"] == 7 - before
    assert m["bytes_on_disk"] == {"images": image_bytes, "masks": mask_bytes,
                                  "total": image_bytes + mask_bytes}
    # every image was fetched once, over two runs: the total counts both runs
    assert m["bytes_downloaded"]["images"] == image_bytes
    assert m["bytes_downloaded_this_run"]["images"] < image_bytes
    assert m["runs"] == 2
    # a third run finds everything: nothing downloaded, and the summary says just that
    again = run(world, out, ["Dog", "Pizza"], limit_per_class=5)
    assert again["bytes_downloaded_this_run"]["images"] == 0
    assert again["bytes_downloaded"]["images"] == image_bytes
    text = dl.summary_text(again)
    assert "this run: downloaded 0 images and 0 masks; 7 images and 10 masks were already " \
           "there" in text
    assert "Open Images has only 3 Pizza images with masks in the test split (5 asked " \
           "for)" in text
    assert "3 of the 5" not in text


def test_orphan_part_files_of_killed_runs_are_removed_at_start(world, tmp_path):
    out = tmp_path / "orphans"
    run(world, out, ["Pizza"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphans = [out / "images" / "000cc62f167d9fa4.jpg.part-{}".format(dead.pid),
                   out / "masks" / "x.png.part-{}".format(dead.pid),
                   out / ".cache" / "test-annotations-object-segmentation.csv.part",
                   out / "manifest.json.part"]
        busy = out / "images" / "0a9e4fa5b0806fc2.jpg.part-{}".format(alive.pid)
        for p in orphans + [busy]:
            p.write_bytes(b"half")
        run(world, out, ["Pizza"])
        assert part_files(out) == [os.path.relpath(str(busy), str(out))]  # another run's
    finally:
        alive.kill()
        alive.wait()


def member_range_zip(path, members):
    """A stored zip of (name, bytes) in order; returns {name: (start, end)} of each member's
    bytes in the file (local header to the next member)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(name, data, compress_type=zipfile.ZIP_STORED)
    with zipfile.ZipFile(path) as z:
        infos = sorted(z.infolist(), key=lambda i: i.header_offset)
        cd = z.start_dir
    ends = [i.header_offset for i in infos[1:]] + [cd]
    return {i.filename: (i.header_offset, e) for i, e in zip(infos, ends)}


@pytest.fixture(scope="module")
def gap_zip(tmp_path_factory, world):
    """A zip where a 214 kB unrelated member sits between two small wanted ones."""
    from fake_openimages import serve
    root = tmp_path_factory.mktemp("gapzip")
    rng = np.random.RandomState(1)
    small = [open(os.path.join(world["sample"], "test-masks", n), "rb").read()
             for n in world["masks_list"][:3]]
    members = [("0000000000000000_m0decoy_00000000.png", rng.bytes(300000)),
               ("a", small[0]), ("big", rng.bytes(214000)), ("c", small[1]),
               ("d", small[2]), ("e", small[0]),
               ("9999999999999999_m0decoy_99999999.png", rng.bytes(100000))]
    spans = member_range_zip(str(root / "gap.zip"), members)
    httpd, handler, url = serve(str(root))
    yield {"url": url + "/gap.zip", "handler": handler, "spans": spans}
    httpd.shutdown()


def test_range_reads_skip_a_big_unrelated_member_between_wanted_ones(gap_zip, tmp_path):
    import requests

    from openimages.rangezip import RemoteZip
    handler, spans = gap_zip["handler"], gap_zip["spans"]
    wanted = sum(spans[n][1] - spans[n][0] for n in ("a", "c"))
    del handler.requests[:]
    z = RemoteZip(gap_zip["url"], requests.Session(), cache_dir=str(tmp_path))
    data = z.read_members(["a", "c"])
    index = sum(r[3] for r in handler.requests if r[1].startswith("bytes=-"))
    fetched = sum(r[3] for r in handler.requests)
    assert fetched == z.bytes_fetched
    assert fetched <= 2 * (wanted + index), (fetched, wanted, index)
    assert len(data["a"]) and len(data["c"])
    # with the index cached, only member bytes travel: at most twice what is wanted
    del handler.requests[:]
    z = RemoteZip(gap_zip["url"], requests.Session(), cache_dir=str(tmp_path))
    z.read_members(["a", "c"])
    assert z.bytes_fetched == sum(r[3] for r in handler.requests) <= 2 * wanted


def test_neighbouring_wanted_members_come_in_one_request(gap_zip, tmp_path):
    import requests

    from openimages.rangezip import RemoteZip
    handler, spans = gap_zip["handler"], gap_zip["spans"]
    z = RemoteZip(gap_zip["url"], requests.Session(), cache_dir=str(tmp_path))
    z.entries()
    del handler.requests[:]
    z.read_members(["c", "e"])           # "d" (small) lies between them: one request
    assert len(handler.requests) == 1
    assert handler.requests[0][3] == spans["e"][1] - spans["c"][0]


@pytest.fixture
def poisoned(tmp_path, openimages_sample):
    """The local fixture with a segmentation CSV serving poison among good rows."""
    from fake_openimages import build_world, serve, start_s3
    root = tmp_path / "server"
    ids = ["00a1ab47b5439e8c", "00b20c960e6e82c2"]
    uploads = build_world(root, openimages_sample, {"test": ids}, relabel={},
                          segmentation_mids=[DOG])
    csv_path = root / "meta" / "test-annotations-object-segmentation.csv"
    good = csv_path.read_text().splitlines()
    box = ",0.1,0.5,0.1,0.5,0.9,"
    poison = ["../../x.png,00a1ab47b5439e8c,/m/0bt9lr,deadbeef" + box,
              "00a1ab47b5439e8c_m0bt9lr_deadbeef.png,../../../evil,/m/0bt9lr,deadbeef" + box,
              "0000000000000001/../../y.png,0000000000000001/../..,/m/0bt9lr,deadbeef" + box]
    csv_path.write_text("\n".join(good + poison) + "\n")
    with zipfile.ZipFile(root / "masks" / "test-masks" / "test-masks-0.zip", "a") as z:
        z.writestr("../../x.png", open(os.path.join(
            openimages_sample, "test-masks", "00a1ab47b5439e8c_m0bt9lr_ece6d8d8.png"),
            "rb").read())
    httpd, _, url = serve(str(root))
    s3server, endpoint, s3 = start_s3()
    for key, path in uploads["test"]:
        s3.upload_file(path, "open-images-dataset", key)
    s3.put_object(Bucket="open-images-dataset", Key="test/../../../evil.jpg",
                  Body=open(uploads["test"][0][1], "rb").read())
    yield {"meta": url + "/meta", "masks": url + "/masks", "s3": endpoint, "ids": ids,
           "lines": (len(good) + 1, len(good) + 2, len(good) + 3)}
    s3server.stop()
    httpd.shutdown()


def test_poisoned_metadata_rows_are_refused_and_nothing_escapes_out_dir(poisoned, tmp_path):
    out = tmp_path / "place" / "out"
    out.parent.mkdir()
    m = dl.download(["Dog"], "test", str(out), metadata_url=poisoned["meta"],
                    masks_url=poisoned["masks"], s3_endpoint=poisoned["s3"], progress=False,
                    workers=2)
    written = sorted(os.path.relpath(os.path.join(d, f), str(tmp_path / "place"))
                     for d, _, files in os.walk(tmp_path / "place") for f in files)
    assert all(w.startswith("out" + os.sep) for w in written), written
    assert not os.path.exists(tmp_path / "x.png") and not os.path.exists(tmp_path / "evil.jpg")
    assert sorted(os.listdir(out / "images")) == [i + ".jpg" for i in poisoned["ids"]]
    assert m["counts"]["images"] == 2 and m["counts"]["masks"] == 2
    rejected = m["rejected_rows"]
    assert rejected["count"] == 3
    name = "test-annotations-object-segmentation.csv"
    a, b, c = poisoned["lines"]
    assert rejected["rows"][0].startswith("{} line {}: MaskPath '../../x.png'".format(name, a))
    assert rejected["rows"][1].startswith("{} line {}: ImageID '../../../evil'".format(name, b))
    assert rejected["rows"][2].startswith("{} line {}: ImageID ".format(name, c))
    assert any("3 rows" in w and name in w for w in m["warnings"])


def test_open_images_name_forms(openimages_sample):
    from openimages.names import check_image_id, check_mask_path
    names = os.listdir(os.path.join(openimages_sample, "test-masks"))
    names.append("677c122b0eaa5d16_m04yx4_9a041d52.png")      # a real train row
    # every boxable class's MID, as MaskPath writes it (/m/01_5g -> m01_5g)
    with open(os.path.join(openimages_sample, "class-descriptions-boxable.csv")) as f:
        mids = [row[0] for row in csv.reader(f)]
    assert "/m/01_5g" in mids and "/m/0199g" in mids and len(mids) > 500
    names += ["0123456789abcdef_{}_0badf00d.png".format(m.replace("/", "")) for m in mids]
    for n in names:
        assert check_mask_path(n, n[:16]) is None, n
        assert check_image_id(n[:16]) is None
    for bad_id in ["../x", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "",
                   "0123456789abcde/", "0123456789abcdef\n"]:
        assert check_image_id(bad_id) is not None, bad_id
    iid = "0123456789abcdef"
    for bad in ["../../x.png", iid + "_m0bt9lr_deadbeef.png/../../x.png",
                iid + "_m0bt9lr_deadbeef.jpg", iid + "_m0bt9lr_deadbee.png",
                iid + "_bt9lr_deadbeef.png", iid + "_m0bt9lr_DEADBEEF.png",
                "fedcba9876543210_m0bt9lr_deadbeef.png", iid + "_m0/t9lr_deadbeef.png",
                iid + "_m0bt9lr_deadbeef.png\n", iid + "_m0b.t9lr_deadbeef.png"]:
        assert check_mask_path(bad, iid) is not None, bad


def test_written_names_never_leave_their_folder(tmp_path):
    from openimages.names import inside
    folder = str(tmp_path / "masks")
    assert inside(folder, "0123456789abcdef_m0bt9lr_deadbeef.png") == os.path.join(
        folder, "0123456789abcdef_m0bt9lr_deadbeef.png")
    for bad in ["../x.png", "a/../../x.png", "sub/x.png", "/etc/x.png", "", ".", "..",
                "x\0.png"]:
        with pytest.raises(ValueError, match="refusing to write"):
            inside(folder, bad)
