"""Local stand-ins for the Open Images servers, for tests: an HTTP server with Range
support (metadata and mask zips) and a moto S3 server (the image bucket), plus a
builder for a small world made of the real files in ../shared/data/openimages_sample."""
import csv
import functools
import http.server
import os
import shutil
import socketserver
import threading
import zipfile

import numpy as np
from PIL import Image

SEGMENTATION_HEADER = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax",
                       "BoxYMin", "BoxYMax", "PredictedIoU", "Clicks"]


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range support; records the bytes it sends."""
    ranges = True
    log = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        header = self.headers.get("Range")
        if header and type(self).ranges:
            spec = header.split("=", 1)[1]
            a, b = spec.split("-")
            if a == "":
                start, end = max(0, size - int(b)), size - 1
            else:
                start, end = int(a), (int(b) if b else size - 1)
            end = min(end, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", "bytes {}-{}/{}".format(start, end, size))
        else:
            start, end = 0, size - 1
            self.send_response(200)
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(end - start + 1)
        self.wfile.write(data)
        type(self).log.append((self.path, len(data)))


def serve(directory, ranges=True):
    """Serve a folder on 127.0.0.1 (a random port); returns (server, handler class, url)."""
    handler = type("Handler", (RangeHandler,), {"ranges": ranges, "log": []})
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0),
                                            functools.partial(handler, directory=directory))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler, "http://127.0.0.1:{}".format(httpd.server_address[1])


def mask_box(path):
    """Normalised (xmin, xmax, ymin, ymax) of a mask PNG's pixels."""
    with Image.open(path) as im:
        m = np.asarray(im.convert("L")) > 0
    ys, xs = np.where(m)
    h, w = m.shape
    return xs.min() / w, (xs.max() + 1) / w, ys.min() / h, (ys.max() + 1) / h


def start_s3():
    """A moto S3 server with the public bucket; returns (server, endpoint, client)."""
    import boto3
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = "http://{}:{}".format(host, port)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    s3.create_bucket(Bucket="open-images-dataset", ACL="public-read")
    return server, endpoint, s3


def build_world(root, sample, splits, relabel, segmentation_mids):
    """Lay out metadata, mask zips and bucket objects like Open Images under ``root``.

    sample: ../shared/data/openimages_sample. splits: {split: [ImageID, ...]} taking
    the sample's real images and masks; relabel: {real MID: MID to give it} (so the
    real Dog masks can stand for Cars); segmentation_mids: classes-segmentation.txt.
    Returns {split: [(bucket key, local image path), ...]} to upload.
    """
    root = str(root)
    meta = os.path.join(root, "meta")
    os.makedirs(meta, exist_ok=True)
    for name in ("class-descriptions-boxable.csv", "bbox_labels_600_hierarchy.json"):
        shutil.copy(os.path.join(sample, name), meta)
    with open(os.path.join(meta, "classes-segmentation.txt"), "w") as f:
        f.write("\n".join(segmentation_mids) + "\n")
    mask_dir = os.path.join(sample, "test-masks")
    uploads = {}
    for split, image_ids in splits.items():
        rows, members = [], {}
        for name in sorted(os.listdir(mask_dir)):
            image_id, mid, box_id = name[:-4].split("_")
            if image_id not in image_ids:
                continue
            label = relabel.get("/m/" + mid[1:], "/m/" + mid[1:])
            new_name = "{}_{}_{}.png".format(image_id, label.replace("/", ""), box_id)
            x1, x2, y1, y2 = mask_box(os.path.join(mask_dir, name))
            rows.append([new_name, image_id, label, box_id, x1, x2, y1, y2, "0.9", ""])
            members.setdefault(image_id[0], []).append((os.path.join(mask_dir, name),
                                                        new_name))
        with open(os.path.join(meta, "{}-annotations-object-segmentation.csv".format(split)),
                  "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(SEGMENTATION_HEADER)
            w.writerows(rows)
        zips = os.path.join(root, "masks", "{}-masks".format(split))
        os.makedirs(zips, exist_ok=True)
        for prefix in "0123456789abcdef":
            with zipfile.ZipFile(os.path.join(zips, "{}-masks-{}.zip".format(split, prefix)),
                                 "w") as z:
                for path, new_name in members.get(prefix, []):
                    z.write(path, new_name)
        uploads[split] = [("{}/{}.jpg".format(split, i),
                           os.path.join(sample, "test-images", i + ".jpg")) for i in image_ids]
    return uploads
