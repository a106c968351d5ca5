"""A web page to try a trained model: upload a photo, see the instances.

    python -m mrcnn.demo --weights W.h5 --config module:Class [--port 7860]

Gradio (``pip install 'mrcnn[demo]'``) serves the page on http://127.0.0.1:7860 by
default (localhost only; ``--host 0.0.0.0`` shares it on the network). The page has:

- an image upload (PNG, JPEG, BMP, GIF, TIFF, WebP);
- the result: masks, boxes, class names and scores drawn on the image;
- a score-threshold slider and a class filter, applied at once without running the
  model again (it detects once at the lowest slider value and keeps the result);
- downloads of the drawn result (PNG) and of the detections (JSON: box, class, score
  and an RLE mask per instance, in the uploaded image's pixels);
- a status line. Bad uploads (not an image, a corrupt file, too large) get a plain
  sentence there, never a stack trace; grayscale, 16-bit, CMYK and RGBA images are
  converted to RGB by the same reader as training (``mrcnn.utils.read_image``: alpha
  dropped, EXIF orientation applied) and the status says so.

It runs on CPU. The page logic (``DemoApp``) is plain Python and is tested without a
browser; tests/test_demo_browser.py drives the real page in headless Chromium.
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import weakref

import numpy as np

MAX_UPLOAD_BYTES = 30 * 1024 * 1024
MAX_PIXELS = 40_000_000
IMAGE_TYPES = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"]


class UploadError(ValueError):
    """An upload the demo cannot use; the message is shown to the user as is."""


NOTES = {
    "grayscale": "The image is grayscale; it was converted to RGB.",
    "16-bit": "It has 16 bits per channel; the high byte of each value was kept.",
    "float": "It holds floating-point values; they were scaled to 0-255.",
    "CMYK": "The image is CMYK; it was converted to RGB.",
    "palette": "",
    "transparency": "The image has transparency; the alpha channel was dropped (the model "
                    "sees the stored colours, as in training).",
    "EXIF orientation": "It was turned upright as its EXIF orientation says.",
}


def read_upload(path, max_bytes=MAX_UPLOAD_BYTES, max_pixels=MAX_PIXELS):
    """An uploaded file -> (RGB uint8 [H, W, 3], note). Raises UploadError with a
    sentence for the user. The note says what was converted (grayscale, alpha, ...).

    The pixels come from ``mrcnn.imageops.decode_image``, the reader training and the
    samples use, so the page shows what the model was trained on."""
    from PIL import Image, UnidentifiedImageError
    from .imageops import decode_image
    if not path or not os.path.isfile(path):
        raise UploadError("No image received. Choose an image file (PNG or JPEG) and "
                          "upload it again.")
    name = os.path.basename(path)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise UploadError("{} is {:.3g} MB; the limit is {:.3g} MB. Please upload a smaller "
                          "image.".format(name, size / 2 ** 20, max_bytes / 2 ** 20))
    if size == 0:
        raise UploadError("{} is empty. Please upload an image file.".format(name))
    not_an_image = UploadError("{} is not an image this demo can read (or it is damaged). "
                               "Please upload a PNG or JPEG photo.".format(name))
    try:
        with Image.open(path) as im:  # the header only: refuse huge images before decoding
            width, height = im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError):
        raise not_an_image from None
    if width * height > max_pixels:
        raise UploadError("{} is {}x{} pixels; the limit is {:.3g} megapixels. Please "
                          "upload a smaller image.".format(name, width, height,
                                                           max_pixels / 1e6))
    try:
        image, notes = decode_image(path)
    except (OSError, ValueError):
        raise not_an_image from None
    note = " ".join(NOTES[n] for n in notes if NOTES.get(n))
    return image, note


def _rle(mask):
    """COCO-style uncompressed RLE (column-major counts, starting with zeros)."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [0]]))) if flat.size else []
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])) if flat.size else []
    counts = [int(c) for c in runs]
    if counts and counts[-1] == 0:
        counts = counts[:-1]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


class DemoApp(object):
    """What the page does, without the page: detect once, then filter and draw.

    model: an inference MaskRCNN; class_names: NUM_CLASSES names, background first.
    keep: how many results (a PNG and a JSON each, the page's downloads) stay in
    ``out_dir``; older ones are deleted as new ones come, so a server that runs for weeks
    does not fill the disk (every upload, slider move or class change writes one). The
    folder itself is removed when the app is freed or the process exits, or by
    ``close()``.
    """

    def __init__(self, model, class_names, default_threshold=None, floor=0.05, keep=200):
        self.model = model
        self.class_names = list(class_names)
        conf = model.config.DETECTION_MIN_CONFIDENCE
        self.default_threshold = float(conf if default_threshold is None else default_threshold)
        # detect at the slider's lowest value; moving the slider only filters
        self.floor = float(min(floor, self.default_threshold))
        if conf > self.floor:
            raise ValueError("build the demo's model with DETECTION_MIN_CONFIDENCE <= {} "
                             "(the slider's floor); load_app does".format(self.floor))
        self._lock = threading.Lock()
        if int(keep) != keep or keep < 1:
            raise ValueError("keep={}: give a whole number >= 1 (the demo must keep at "
                             "least its latest result)".format(keep))
        self.keep = int(keep)
        self.out_dir = tempfile.mkdtemp(prefix="mrcnn-demo-")
        self._count = 0
        # (a finalizer, not atexit: it also runs when the app is garbage-collected, and
        # does not keep the app and its model alive until the process ends)
        self._remove_out_dir = weakref.finalize(self, shutil.rmtree, self.out_dir,
                                                ignore_errors=True)

    def close(self):
        """Delete the results folder now (also done when the app is freed or the
        process exits)."""
        self._remove_out_dir()

    def detect(self, image):
        """RGB uint8 image -> raw result dict (rois, class_ids, scores, masks)."""
        with self._lock:
            return self.model.detect([image], verbose=0)[0]

    def select(self, result, threshold, classes=None):
        """Indices of the detections at or above threshold, of the chosen class names."""
        keep = np.asarray(result["scores"]) >= float(threshold)
        if classes is not None:
            wanted = set(classes)
            keep &= np.array([self.class_names[int(c)] in wanted for c in result["class_ids"]],
                             dtype=bool)
        return np.flatnonzero(keep)

    def render(self, image, result, threshold, classes=None):
        """-> (drawn RGB image, detections as a JSON-ready dict, status text)."""
        from .visualize import draw_detections
        ix = self.select(result, threshold, classes)
        drawn = draw_detections(image, result["rois"][ix], result["masks"][:, :, ix],
                                result["class_ids"][ix], self.class_names,
                                result["scores"][ix])
        detections = []
        for i in ix:
            cid = int(result["class_ids"][i])
            detections.append({
                "class_id": cid, "class_name": self.class_names[cid],
                "score": round(float(result["scores"][i]), 4),
                "box": [int(v) for v in result["rois"][i]],
                "mask_rle": _rle(result["masks"][:, :, i])})
        report = {"image_size": [int(image.shape[0]), int(image.shape[1])],
                  "box_format": "y1, x1, y2, x2 in pixels, y2 and x2 exclusive",
                  "score_threshold": float(threshold),
                  "classes": list(classes) if classes is not None else self.class_names[1:],
                  "detections": detections}
        counts = {}
        for d in detections:
            counts[d["class_name"]] = counts.get(d["class_name"], 0) + 1
        found = ", ".join("{} {}".format(n, name) for name, n in sorted(counts.items()))
        status = "{} instance{} at score >= {:.2f}{}".format(
            len(detections), "" if len(detections) == 1 else "s", float(threshold),
            ": " + found if found else "")
        return drawn, report, status

    def save(self, drawn, report):
        """Write the PNG and JSON downloads; returns their paths."""
        from PIL import Image
        with self._lock:
            self._count += 1
            count = self._count
        stem = os.path.join(self.out_dir, "result_{:04d}".format(count))
        png, js = stem + ".png", stem + ".json"
        Image.fromarray(drawn).save(png)
        with open(js, "w") as f:
            json.dump(report, f, indent=1)
        old = count - self.keep
        if old > 0:
            for path in (os.path.join(self.out_dir, "result_{:04d}{}".format(old, ext))
                         for ext in (".png", ".json")):
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
        return png, js

    # -------------------------------------------------------------- page callbacks

    def on_upload(self, path, threshold, classes):
        """Upload -> (result image, PNG path, JSON path, status, state)."""
        try:
            image, note = read_upload(path)
        except UploadError as e:
            return None, None, None, "**Cannot use this upload.** " + str(e), None
        try:
            result = self.detect(image)
        except Exception as e:  # the page shows a sentence, the log keeps the trace
            import traceback
            traceback.print_exc()
            return None, None, None, "**Detection failed** ({}: {}).".format(
                type(e).__name__, e), None
        state = {"image": image, "result": result, "note": note}
        return self._show(state, threshold, classes)

    def on_change(self, state, threshold, classes):
        if not state:
            return None, None, None, "Upload an image to start.", None
        return self._show(state, threshold, classes)

    def _show(self, state, threshold, classes):
        drawn, report, status = self.render(state["image"], state["result"], threshold,
                                            classes)
        png, js = self.save(drawn, report)
        if state.get("note"):
            status = state["note"] + " " + status
        return drawn, png, js, status, state


def build_page(app, title="Mask R-CNN demo"):
    """The Gradio Blocks page around a DemoApp."""
    import gradio as gr
    names = app.class_names[1:]
    with gr.Blocks(title=title) as page:
        gr.Markdown("# {}\nUpload an image: the model finds each instance and draws its "
                    "mask, box, class and score.".format(title))
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Image", file_types=["image"] + IMAGE_TYPES,
                                 type="filepath", elem_id="upload")
                threshold = gr.Slider(minimum=app.floor, maximum=1.0, step=0.01,
                                      value=app.default_threshold, label="Score threshold",
                                      elem_id="threshold")
                classes = gr.CheckboxGroup(choices=names, value=names, label="Classes",
                                           elem_id="classes")
                status = gr.Markdown("Upload an image to start.", elem_id="status")
            with gr.Column():
                result = gr.Image(label="Result", type="numpy", interactive=False,
                                  format="png", elem_id="result")
                png = gr.File(label="Download result (PNG)", elem_id="download_png")
                js = gr.File(label="Download detections (JSON)", elem_id="download_json")
        state = gr.State(None)
        outputs = [result, png, js, status, state]
        upload.upload(app.on_upload, [upload, threshold, classes], outputs)
        threshold.change(app.on_change, [state, threshold, classes], outputs)
        classes.change(app.on_change, [state, threshold, classes], outputs)
    return page


def load_app(weights, config, class_names=None, floor=0.05):
    """A DemoApp for a weight file and a Config (class, instance or 'module:Class')."""
    from .inference_model import inference_config, load_inference_model, read_class_names
    config = inference_config(config)
    default = config.DETECTION_MIN_CONFIDENCE
    config.DETECTION_MIN_CONFIDENCE = min(default, floor)
    model = load_inference_model(weights, config)
    names = read_class_names(weights, config.NUM_CLASSES, class_names)
    return DemoApp(model, names, default_threshold=default, floor=floor)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mrcnn.demo",
                                description="Serve a web page that runs a trained model on "
                                            "uploaded images.")
    p.add_argument("--weights", required=True, help="checkpoint (.h5 or .weights.h5)")
    p.add_argument("--config", required=True, help="module:Class of an inference Config")
    p.add_argument("--class-names", default=None,
                   help="JSON list of class names (default: class_names.json beside the "
                        "weights)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default %(default)s: this computer only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--title", default="Mask R-CNN demo")
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401  (checked here for a clear message)
    except ImportError:
        print("error: the demo needs Gradio: pip install 'mrcnn[demo]'", file=sys.stderr)
        raise SystemExit(2)
    from .config import ConfigError
    try:
        app = load_app(args.weights, args.config, args.class_names)
    except (ConfigError, ValueError, OSError) as e:
        print("error: {}".format(e), file=sys.stderr)
        raise SystemExit(2)
    page = build_page(app, args.title)
    print("serving on http://{}:{} (Ctrl+C stops)".format(args.host, args.port), flush=True)
    # a service manager (systemd, docker stop) ends the server with SIGTERM: exit the
    # normal way, so that the results folder is removed as on Ctrl+C
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    page.queue().launch(server_name=args.host, server_port=args.port, share=False,
                        show_error=False, inbrowser=False, allowed_paths=[app.out_dir])


if __name__ == "__main__":
    main()
