"""The web demo's logic (no browser): uploads, filtering, drawing and downloads."""
import json

import numpy as np
import pytest
from PIL import Image

from mrcnn import demo
from tiny_configs import TinyShapesDemoConfig


def save(tmp_path, name, array):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return str(path)


def test_read_upload_converts_grayscale_and_rgba_with_a_note(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    image, note = demo.read_upload(save(tmp_path, "g.png", gray))
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 1], gray)
    assert "grayscale" in note
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255                       # top half opaque red, bottom transparent
    image, note = demo.read_upload(save(tmp_path, "a.png", rgba))
    # alpha dropped, as training reads the file (utils.read_image): stored colours kept
    assert image[0, 0].tolist() == [200, 0, 0] and image[3, 0].tolist() == [200, 0, 0]
    assert "transparency" in note and "dropped" in note
    rgb = np.full((3, 3, 3), 7, np.uint8)
    image, note = demo.read_upload(save(tmp_path, "c.png", rgb))
    assert note == "" and image.tolist() == rgb.tolist()


def test_read_upload_refuses_bad_files_with_sentences(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    with pytest.raises(demo.UploadError, match="notes.png is not an image"):
        demo.read_upload(str(text))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(demo.UploadError, match="empty.jpg is empty"):
        demo.read_upload(str(empty))
    big = save(tmp_path, "big.png", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(demo.UploadError, match=r"big.png is 100x100 pixels; the limit is 0.005 megapixels"):
        demo.read_upload(big, max_pixels=5000)
    with pytest.raises(demo.UploadError, match=r"big.png is .* MB; the limit is .* MB"):
        demo.read_upload(big, max_bytes=10)
    with pytest.raises(demo.UploadError, match="No image received"):
        demo.read_upload(None)


def test_rle_round_trips_with_pycocotools():
    from pycocotools import mask as mask_utils
    m = np.zeros((5, 7), bool)
    m[1:4, 2:6] = True
    m[4, 6] = True
    rle = demo._rle(m)
    assert sum(rle["counts"]) == 35 and rle["size"] == [5, 7]
    coco = mask_utils.frPyObjects(rle, 5, 7)
    np.testing.assert_array_equal(mask_utils.decode(coco).astype(bool), m)


@pytest.fixture(scope="module")
def app(tiny_shapes_weights):
    return demo.load_app(tiny_shapes_weights, TinyShapesDemoConfig, floor=0.0)


def test_page_callbacks_detect_once_then_filter(app, tmp_path):
    from test_export import shapes_image
    image = shapes_image(80, 100, 7)
    path = save(tmp_path, "shapes.png", image)
    drawn, png, js, status, state = app.on_upload(path, 0.0, ["square", "circle", "triangle"])
    result = state["result"]
    n = len(result["scores"])
    assert n > 0 and drawn.shape == image.shape and not np.array_equal(drawn, image)
    report = json.load(open(js))
    assert len(report["detections"]) == n
    assert status.startswith("{} instance".format(n))
    assert np.asarray(Image.open(png)).tolist() == drawn.tolist()
    first = report["detections"][0]
    assert set(first) == {"class_id", "class_name", "score", "box", "mask_rle"}
    assert first["class_name"] == app.class_names[first["class_id"]]
    # the slider: only detections at or above it; the model does not run again
    cut = float(np.median(result["scores"]))
    _, _, js2, status2, state2 = app.on_change(state, cut, ["square", "circle", "triangle"])
    kept = json.load(open(js2))["detections"]
    assert len(kept) == int((result["scores"] >= cut).sum())
    assert all(d["score"] >= round(cut, 4) - 1e-4 for d in kept)
    assert state2["result"] is result
    # the class filter
    name = app.class_names[int(result["class_ids"][0])]
    _, _, js3, _, _ = app.on_change(state, 0.0, [name])
    only = json.load(open(js3))["detections"]
    assert {d["class_name"] for d in only} == {name}
    assert len(only) == int(sum(app.class_names[int(c)] == name for c in result["class_ids"]))
    _, _, js4, status4, _ = app.on_change(state, 0.0, [])
    assert json.load(open(js4))["detections"] == [] and status4.startswith("0 instances")


def test_demo_keeps_only_its_newest_results_and_removes_its_folder():
    """Every upload or slider move writes a PNG and a JSON: a long-running server kept
    them all in /tmp, and the folder outlived the process."""
    import os
    from types import SimpleNamespace
    model = SimpleNamespace(config=SimpleNamespace(DETECTION_MIN_CONFIDENCE=0.0))
    app = demo.DemoApp(model, ["BG", "a"], keep=3)
    drawn = np.zeros((4, 5, 3), np.uint8)
    paths = [app.save(drawn, {"n": i}) for i in range(1, 6)]
    assert sorted(os.listdir(app.out_dir)) == [
        "result_{:04d}.{}".format(i, ext) for i in (3, 4, 5) for ext in ("json", "png")]
    png, js = paths[-1]
    assert json.load(open(js)) == {"n": 5} and Image.open(png).size == (5, 4)
    out_dir = app.out_dir
    del app
    import gc
    gc.collect()
    assert not os.path.exists(out_dir)
    for keep in (0, 0.5):
        with pytest.raises(ValueError, match="keep={}: give a whole number".format(keep)):
            demo.DemoApp(model, ["BG", "a"], keep=keep)
    closed = demo.DemoApp(model, ["BG", "a"])
    assert os.path.isdir(closed.out_dir)
    closed.close()
    assert not os.path.exists(closed.out_dir)


def test_an_inference_model_leaves_no_temporary_folder(tiny_shapes_weights, tmp_path,
                                                        monkeypatch):
    """load_inference_model made an empty mrcnn-inference-* folder per call, never removed."""
    import os
    import tempfile
    from mrcnn.inference_model import load_inference_model
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    weights_dir = os.path.dirname(os.path.abspath(tiny_shapes_weights))
    before = sorted(os.listdir(weights_dir))
    model = load_inference_model(tiny_shapes_weights, TinyShapesDemoConfig)
    assert model.model_dir == weights_dir
    assert os.listdir(tmp_path) == [] and sorted(os.listdir(weights_dir)) == before


def test_page_callbacks_turn_bad_uploads_into_a_message(app, tmp_path):
    bad = tmp_path / "report.pdf"
    bad.write_bytes(b"%PDF-1.4 not an image")
    drawn, png, js, status, state = app.on_upload(str(bad), 0.5, None)
    assert drawn is None and png is None and state is None
    assert "Cannot use this upload" in status and "report.pdf is not an image" in status
    assert "Traceback" not in status
    gray = save(tmp_path, "gray.png", np.full((50, 60), 128, np.uint8))
    drawn, _, _, status, _ = app.on_upload(gray, 0.5, None)
    assert drawn.shape == (50, 60, 3) and status.startswith("The image is grayscale")
    assert app.on_change(None, 0.5, None)[3] == "Upload an image to start."


def test_demo_cli_without_gradio_or_weights_exits_with_a_message(tmp_path):
    with pytest.raises(SystemExit) as e:
        demo.main(["--weights", str(tmp_path / "missing.h5"), "--config",
                   "tiny_configs:TinyShapesConfig"])
    assert e.value.code == 2
