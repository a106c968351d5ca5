"""visualize: every drawing function writes a PNG headless, without opening windows."""
import matplotlib
import numpy as np
import pytest
from PIL import Image

from mrcnn import utils, visualize

matplotlib.use("Agg")


def png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


@pytest.fixture
def scene():
    image = np.full((60, 80, 3), 100, np.uint8)
    masks = np.zeros((60, 80, 2), bool)
    masks[10:30, 10:30, 0] = True
    masks[35:55, 40:75, 1] = True
    boxes = utils.extract_bboxes(masks)
    return image, boxes, masks, np.array([1, 2]), ["BG", "cat", "dog"]


def test_random_colors_are_distinct_and_seeded():
    a = visualize.random_colors(5, seed=1)
    assert a == visualize.random_colors(5, seed=1)
    assert len(set(a)) == 5 and all(0 <= v <= 1 for c in a for v in c)


def test_apply_mask_blends_only_inside_mask():
    image = np.zeros((2, 2, 3), np.float32)
    mask = np.array([[1, 0], [0, 0]])
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.5), alpha=0.5)
    np.testing.assert_allclose(out[0, 0], [127.5, 0, 63.75])
    assert not out[1].any() and not out[0, 1].any()


def test_display_instances_saves_png_and_returns_masked_image(tmp_path, scene):
    image, boxes, masks, ids, names = scene
    path = tmp_path / "inst.png"
    colors = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)]
    out = visualize.display_instances(image, boxes, masks, ids, names, np.array([0.9, 0.75]),
                                      title="t", figsize=(4, 4), colors=colors,
                                      save_path=str(path))
    assert png_size(path)[0] > 100
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert out[20, 20].tolist() == [177, 50, 50]     # 100 * .5 + 255 * .5 on red
    assert out[45, 50].tolist() == [50, 50, 177]
    assert out[0, 0].tolist() == [100, 100, 100]
    import matplotlib.pyplot as plt
    assert plt.get_fignums() == []  # closed, nothing left open


def test_display_instances_checks_lengths(scene):
    image, boxes, masks, ids, names = scene
    with pytest.raises(ValueError, match="2 boxes but 1 class ids"):
        visualize.display_instances(image, boxes, masks, ids[:1], names)


def test_other_figures_save_pngs(tmp_path, scene):
    image, boxes, masks, ids, names = scene
    visualize.display_top_masks(image, masks, ids, names, save_path=str(tmp_path / "top.png"))
    visualize.display_images([image, image[:, :, 0]], titles=["a", "b"],
                             save_path=str(tmp_path / "imgs.png"))
    ap, precisions, recalls, overlaps = utils.compute_ap(boxes, ids, masks, boxes, ids,
                                                         np.array([0.9, 0.8]), masks)
    visualize.plot_precision_recall(ap, precisions, recalls, save_path=str(tmp_path / "pr.png"))
    visualize.plot_overlaps(ids, ids, np.array([0.9, 0.8]), overlaps, names,
                            save_path=str(tmp_path / "ov.png"))
    visualize.display_differences(image, boxes, ids, masks, boxes, ids, np.array([0.9, 0.8]),
                                  masks, names, save_path=str(tmp_path / "diff.png"))
    visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 2, masks=masks,
                         captions=["a", "b"], save_path=str(tmp_path / "boxes.png"))
    mask_targets = np.ones((2, 28, 28), np.float32)
    visualize.draw_rois(image, boxes, boxes, mask_targets, ids, names,
                        save_path=str(tmp_path / "rois.png"))
    for name in ("top", "imgs", "pr", "ov", "diff", "boxes", "rois"):
        assert png_size(tmp_path / (name + ".png"))[0] > 50, name


def test_draw_box_marks_outline():
    image = np.zeros((10, 10, 3), np.uint8)
    visualize.draw_box(image, (2, 2, 8, 8), (255, 0, 0))
    assert image[2, 5].tolist() == [255, 0, 0] and image[5, 5].tolist() == [0, 0, 0]


def test_display_table_prints_and_saves(tmp_path, capsys):
    visualize.display_table([["a", "b"], [1, 2]], save_path=str(tmp_path / "t.txt"))
    assert "a" in capsys.readouterr().out
    assert (tmp_path / "t.txt").read_text().startswith("a")


def test_color_splash_keeps_colour_only_inside_masks():
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, :] = (200, 100, 0)
    masks = np.zeros((4, 4, 2), bool)
    masks[0, 0, 0] = masks[3, 3, 1] = True
    out = visualize.color_splash(image, masks)
    assert out[0, 0].tolist() == [200, 100, 0] and out[3, 3].tolist() == [200, 100, 0]
    gray = round(0.299 * 200 + 0.587 * 100)  # 118
    assert out[1, 1].tolist() == [gray] * 3
    assert (visualize.color_splash(image, np.zeros((4, 4, 0), bool)) == gray).all()


def test_draw_detections_blends_masks_draws_boxes_and_labels(scene):
    image, boxes, masks, ids, names = scene
    colors = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 1.0, 0.0)]
    out = visualize.draw_detections(image, boxes, masks, ids, names, [0.9, 0.75],
                                    alpha=0.5, colors=colors)
    assert out.dtype == np.uint8 and out.shape == image.shape
    c0 = np.array(colors[ids[0] % 4]) * 255
    y, x = 25, 25  # inside mask 0, away from its outline and label
    np.testing.assert_allclose(out[y, x], np.round(image[y, x] * 0.5 + c0 * 0.5), atol=1)
    y1, x1, y2, x2 = boxes[1]
    c1 = tuple(int(v * 255) for v in colors[ids[1] % 4])
    assert tuple(out[y2 - 1, (x1 + x2) // 2]) == c1  # bottom edge of the box outline
    assert out[0, 0].tolist() == image[0, 0].tolist()  # outside everything: untouched
    assert (out[boxes[0][0] + 2:boxes[0][0] + 8, boxes[0][1] + 3] == 0).any()  # label bg
