"""Local stand-ins for the Open Images servers, for tests: an HTTP server with Range
support (metadata and mask zips) and a moto S3 server (the image bucket), plus a
builder for a small world made of the real files in ../shared/data/openimages_sample.

Both servers can be slowed (``throttle``: bytes per second per connection) so that tests
can stop a download in the middle, and both record what they were asked for.
"""
import csv
import functools
import http.server
import os
import shutil
import socket
import socketserver
import threading
import time
import zipfile

import numpy as np
from PIL import Image

SEGMENTATION_HEADER = ["MaskPath", "ImageID", "LabelName", "BoxID", "BoxXMin", "BoxXMax",
                       "BoxYMin", "BoxYMax", "PredictedIoU", "Clicks"]


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range support.

    log: (path, bytes sent) of each answered GET (logged as the answer starts).
    requests: (path, Range header or None, status, bytes sent) of every GET, errors too.
    faults: {path: HTTP status} answered instead of the file (a fault injected by a test).
    throttle: bytes per second per response (None: as fast as it goes).
    """
    ranges = True
    log = []
    requests = []
    faults = {}
    throttle = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        cls = type(self)
        header = self.headers.get("Range")
        status = cls.faults.get(self.path)
        if status is not None:
            cls.requests.append((self.path, header, status, 0))
            self.send_error(status)
            return
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            cls.requests.append((self.path, header, 404, 0))
            self.send_error(404)
            return
        size = os.path.getsize(path)
        if header and cls.ranges:
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
        # logged before the bytes go, so a client that has them finds them logged
        cls.log.append((self.path, len(data)))
        cls.requests.append((self.path, header if cls.ranges else None,
                             206 if header and cls.ranges else 200, len(data)))
        _send(self.wfile, data, cls.throttle)


def _send(out, data, throttle, chunk=16384):
    """Write data, at most ``throttle`` bytes per second when it is set."""
    if not throttle:
        out.write(data)
        return
    t0 = time.monotonic()
    for i in range(0, len(data), chunk):
        out.write(data[i:i + chunk])
        out.flush()
        ahead = (i + chunk) / float(throttle) - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)


class _QuietServer(socketserver.ThreadingTCPServer):
    """No traceback when a client goes away mid-answer (a killed downloader does)."""
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def serve(directory, ranges=True, throttle=None):
    """Serve a folder on 127.0.0.1 (a random port); returns (server, handler class, url).

    throttle: bytes per second per response (None: no limit); the handler class's
    ``throttle`` and ``faults`` can be changed while it serves."""
    handler = type("Handler", (RangeHandler,), {"ranges": ranges, "log": [], "requests": [],
                                                "faults": {}, "throttle": throttle})
    httpd = _QuietServer(("127.0.0.1", 0), functools.partial(handler, directory=directory))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, handler, "http://127.0.0.1:{}".format(httpd.server_address[1])


class ThrottleProxy(object):
    """A TCP relay in front of a server (the moto S3 one) that slows what the server sends
    to ``throttle`` bytes per second per connection and records the request lines
    ("GET /bucket/key") that clients send. ``endpoint`` is the URL to give clients."""

    def __init__(self, target_host, target_port, throttle=None):
        self.target = (target_host, target_port)
        self.throttle = throttle
        self.request_lines = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.endpoint = "http://127.0.0.1:{}".format(self._listener.getsockname()[1])
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._upstream, args=(client, upstream),
                             daemon=True).start()
            threading.Thread(target=self._downstream, args=(upstream, client),
                             daemon=True).start()

    def _upstream(self, client, upstream):
        pending = b""
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                pending += data
                while b"\r\n\r\n" in pending:     # bodiless requests (GET, HEAD)
                    head, pending = pending.split(b"\r\n\r\n", 1)
                    line = head.split(b"\r\n", 1)[0].decode("latin-1")
                    self.request_lines.append(" ".join(line.split(" ")[:2]))
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(upstream)
            _close(client)

    def _downstream(self, upstream, client):
        try:
            while True:
                t0 = time.monotonic()
                data = upstream.recv(16384)
                if not data:
                    break
                client.sendall(data)
                if self.throttle:
                    ahead = len(data) / float(self.throttle) - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            _close(upstream)
            _close(client)

    def close(self):
        self._closed = True
        _close(self._listener)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


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


def build_world(root, sample, splits, relabel, segmentation_mids, decoy_bytes=0):
    """Lay out metadata, mask zips and bucket objects like Open Images under ``root``.

    sample: ../shared/data/openimages_sample. splits: {split: [ImageID, ...]} taking
    the sample's real images and masks; relabel: {real MID: MID to give it} (so the
    real Dog masks can stand for Cars); segmentation_mids: classes-segmentation.txt.
    decoy_bytes: an unrelated stored member of this size is put before and after each
    real member, so that the zips are mostly bytes nobody wants (as the real ones are).
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
                for k, (path, new_name) in enumerate(members.get(prefix, [])):
                    if decoy_bytes:
                        z.writestr("{}{:015x}_m0decoy_{:08x}.png".format(prefix, k, k),
                                   os.urandom(decoy_bytes), compress_type=zipfile.ZIP_STORED)
                    z.write(path, new_name)
                if decoy_bytes and members.get(prefix):
                    z.writestr("{}fffffffffffffff_m0decoy_ffffffff.png".format(prefix),
                               os.urandom(decoy_bytes), compress_type=zipfile.ZIP_STORED)
        uploads[split] = [("{}/{}.jpg".format(split, i),
                           os.path.join(sample, "test-images", i + ".jpg")) for i in image_ids]
    return uploads
