"""Drive the web demo in a real headless Chromium (Debian's ``chromium``) with Playwright.

Runs when a Chromium is found (``MRCNN_CHROMIUM`` or ``chromium`` on PATH; .ci/run
installs it) and is skipped with a message otherwise. It starts
``python -m mrcnn.demo`` on a free localhost port, uploads an image, waits for the
result, checks it differs from the upload, moves the score slider, downloads the JSON,
and takes a screenshot of the page.

It serves the tiny model that tests/conftest.py trains in seconds. The README's picture,
docs/demo.png, was written by this test serving the shapes sample's recorded run:

    MRCNN_DEMO_WEIGHTS=out/shapes/logs/<run>/mask_rcnn_shapes_0028.h5 \
    MRCNN_DEMO_CONFIG=samples.shapes.train:ShapesTrainConfig \
    MRCNN_DEMO_SCREENSHOT=docs/demo.png  python -m pytest -m browser
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("MRCNN_CHROMIUM") or shutil.which("chromium") or \
    shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="needs Chromium (apt-get install chromium, or set "
                                            "MRCNN_CHROMIUM to its path); .ci/run installs it"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    pytest.importorskip("gradio")
    pytest.importorskip("playwright")
    weights = os.environ.get("MRCNN_DEMO_WEIGHTS") or \
        request.getfixturevalue("tiny_shapes_weights")
    config = os.environ.get("MRCNN_DEMO_CONFIG", "tiny_configs:TinyShapesDemoConfig")
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "server.log"
    tmp = tmp_path_factory.mktemp("demo-tmp")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "tests")]),
               GRADIO_ANALYTICS_ENABLED="False", TMPDIR=str(tmp))
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mrcnn.demo", "--weights", weights, "--config", config,
             "--port", str(port), "--title", "Shapes demo"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:{}/".format(port)
    deadline = time.time() + 240
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("the demo did not start:\n" + log.read_text()[-3000:])
            time.sleep(1)
    yield url
    results = [d for d in os.listdir(tmp) if d.startswith("mrcnn-demo-")]
    assert len(results) == 1, results     # (the downloads were there while it ran)
    proc.terminate()        # SIGTERM, as a service manager stops it
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    # the server removed its results folder on the way out
    assert [d for d in os.listdir(tmp) if d.startswith("mrcnn-demo-")] == []


def test_demo_page_in_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright
    from test_export import shapes_image
    # a 64-px shapes image (what the models were trained on), shown 4x larger
    image = np.asarray(Image.fromarray(shapes_image(64, 64, 11)).resize((256, 256),
                                                                         Image.NEAREST))
    upload = tmp_path / "shapes.png"
    Image.fromarray(image).save(upload)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("not a picture")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(server)
        page.wait_for_selector("#upload input[type=file]", state="attached", timeout=60000)

        # a file that is not an image: a sentence in the status line, no result
        page.set_input_files("#upload input[type=file]", str(not_an_image))
        page.wait_for_function(
            "document.querySelector('#status') && "
            "document.querySelector('#status').innerText.includes('Cannot use this upload')",
            timeout=120000)
        assert "Traceback" not in page.inner_text("#status")
        page.locator("#upload button[aria-label='Clear']").first.click()

        page.set_input_files("#upload input[type=file]", str(upload))
        page.wait_for_function(
            "document.querySelector('#status') && "
            "/\\d+ instances? at score/.test(document.querySelector('#status').innerText)",
            timeout=180000)
        page.wait_for_selector("#result img", timeout=60000)
        status = page.inner_text("#status")

        # the drawn result, fetched as the browser shows it, differs from the upload
        src = page.get_attribute("#result img", "src")
        data = page.request.get(src).body() if not src.startswith("data:") else None
        if data is None:
            import base64
            data = base64.b64decode(src.split(",", 1)[1])
        shown = tmp_path / "shown.png"
        shown.write_bytes(data)
        result = np.asarray(Image.open(shown).convert("RGB"))
        assert result.shape == image.shape
        assert np.abs(result.astype(int) - image.astype(int)).sum() > 0

        # the JSON download
        with page.expect_download() as info:
            page.locator("#download_json a").first.click()
        path = tmp_path / "detections.json"
        info.value.save_as(path)
        report = json.load(open(path))
        assert report["image_size"] == [256, 256]
        n = int(status.split(" instance")[0].split()[-1])
        assert len(report["detections"]) == n
        assert all(d["class_name"] in ("square", "circle", "triangle")
                   for d in report["detections"])

        # the slider filters what is shown, without another upload
        scores = sorted(d["score"] for d in report["detections"])
        box = page.locator("#threshold input[type=number]").first
        box.fill("0.5")
        box.press("Enter")
        page.wait_for_function(
            "document.querySelector('#status').innerText.includes('at score >= 0.50')",
            timeout=60000)
        shown = int(page.inner_text("#status").split(" instance")[0].split()[-1])
        assert shown == sum(s >= 0.5 for s in scores)

        screenshot = os.environ.get("MRCNN_DEMO_SCREENSHOT") or str(tmp_path / "demo.png")
        page.screenshot(path=screenshot, full_page=False)
        assert Image.open(screenshot).size == (1280, 860)
        browser.close()
