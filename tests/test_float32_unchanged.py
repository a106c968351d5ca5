"""Speed work must leave float32 detections as they were: a seeded ResNet-50 model's 100
detections on a seeded image, against those recorded in tests/data/float32_detections.npz
(tests/golden_detections.py says how they were made and when to rewrite them)."""
import numpy as np

import golden_detections as golden


def test_float32_detections_match_the_recorded_ones(tmp_path):
    reference = golden.load()
    assert len(reference["scores"]) == 100
    result = golden.detect(str(tmp_path))
    assert len(result["scores"]) == len(reference["scores"])
    assert result["masks"].shape == reference["masks"].shape
    pairs, missing = golden.match(reference, result)
    assert missing == [], "detections {} changed (class, box > 1 px, score > 1e-4 or mask " \
        "IoU < 0.99)".format(missing)
    assert len(pairs) == 100


def test_the_match_refuses_each_kind_of_change():
    reference = golden.load()
    same = {k: v.copy() for k, v in reference.items()}
    assert golden.match(reference, same) == ([(i, i) for i in range(100)], [])
    i = 17
    for key, change in [
            ("scores", lambda r: r["scores"].__setitem__(i, r["scores"][i] + 2e-4)),
            ("rois", lambda r: r["rois"].__setitem__((i, 2), r["rois"][i, 2] + 2)),
            ("class_ids", lambda r: r["class_ids"].__setitem__(
                i, 1 + r["class_ids"][i] % (r["class_ids"].max()))),
            ("masks", lambda r: r["masks"].__setitem__(
                (slice(None), slice(None), i), np.roll(r["masks"][..., i], 3, axis=0)))]:
        changed = {k: v.copy() for k, v in reference.items()}
        change(changed)
        pairs, missing = golden.match(reference, changed)
        assert missing == [i], key
