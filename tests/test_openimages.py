"""The Open Images subset downloader against real local servers: a moto S3 server
(the image bucket) and an HTTP server with Range support (metadata and mask zips),
with fixtures built from the real files in ../shared/data/openimages_sample."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from openimages import download as dl
from openimages.classes import ClassCatalog, UnknownClassError
from openimages.rangezip import parse_central_directory, parse_end_records

DOG, PIZZA, PERSON, WOMAN = "/m/0bt9lr", "/m/0663v", "/m/01g317", "/m/03bt1vf"
SYNTHETIC_WOMAN = "00d5eb460eab4613_m03bt1vf_deadbeef.png"


from fake_openimages import mask_box, serve, start_s3  # noqa: E402  (local servers)


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
    none = run(world, tmp_path / "nosub", ["Person"], subclasses=False)
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
    m = run(world, tmp_path / "tortoise", ["Tortoise"])
    assert m["counts"]["images"] == 0
    assert any("no segmentation masks" in w and "Tortoise" in w for w in m["warnings"])
