"""``detect`` (images, a folder, a video; pictures and detections.json) and ``inspect``
(the ground truth of a dataset drawn, to check that it loads as intended)."""
import json
import os
import sys

import numpy as np

from ..datasets._common import IMAGE_EXTENSIONS
from .common import CliError, class_names_for
from .evaluate import inference_model, weights_for

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def list_images(path):
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path)
                       if n.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise CliError("--image {}: the folder holds no images ({})".format(
                path, ", ".join(IMAGE_EXTENSIONS)))
        return files
    if not os.path.exists(path):
        raise CliError("--image {}: no such file or folder".format(path))
    return [path]


def render(image, r, class_names, splash):
    from .. import visualize
    if splash:
        return visualize.color_splash(image, r["masks"])
    return visualize.draw_detections(image, r["rois"], r["masks"], r["class_ids"],
                                     class_names, r["scores"])


def detection_record(name, r, class_names):
    return {"image": name, "detections": [
        {"class_id": int(c), "class_name": class_names[int(c)] if int(c) < len(class_names)
         else str(int(c)), "score": round(float(s), 4),
         "box_yxyx": [int(v) for v in b], "mask_pixels": int(r["masks"][:, :, i].sum())}
        for i, (c, s, b) in enumerate(zip(r["class_ids"], r["scores"], r["rois"]))]}


def cmd_detect(sample, args):
    from .. import utils
    from PIL import Image
    if not args.image and not args.video:
        raise CliError("detect needs --image PATH|DIR or --video PATH")
    images = list_images(args.image) if args.image else []
    if args.video and not os.path.isfile(args.video):
        raise CliError("--video {}: no such file".format(args.video))
    path = weights_for(sample, args)
    names = class_names_for(path, sample, args, spec=args.weights)
    model, path = inference_model(sample, args, names, path)
    os.makedirs(args.out, exist_ok=True)
    suffix = "splash" if args.splash else "detections"
    records, written = [], []
    for file in images:
        try:
            image = utils.read_image(file)
        except Exception as e:  # a corrupt file: say which, go on with the others
            print("skipping {}: {}".format(file, e), file=sys.stderr)
            continue
        r = model.detect([image], verbose=0)[0]
        stem = os.path.splitext(os.path.basename(file))[0]
        target = os.path.join(args.out, "{}_{}.png".format(stem, suffix))
        Image.fromarray(render(image, r, names, args.splash)).save(target)
        records.append(detection_record(os.path.basename(file), r, names))
        written.append(target)
        print("{}: {} instances -> {}".format(file, len(r["class_ids"]), target))
    if args.video:
        written.append(detect_video(model, args.video, args.out, names, args.splash,
                                    records))
    with open(os.path.join(args.out, "detections.json"), "w") as f:
        json.dump(records, f, indent=1)
    return written


def detect_video(model, video_path, out_dir, class_names, splash, records=None):
    """Detect on every frame of a video and write the rendered frames as a new video
    (<out_dir>/<name>_splash.mp4 or _detections.mp4), with a progress bar."""
    try:
        import imageio.v2 as imageio
    except ImportError:
        raise CliError("video needs imageio and imageio-ffmpeg: pip install imageio "
                       "imageio-ffmpeg")
    from tqdm import tqdm
    stem = os.path.splitext(os.path.basename(video_path))[0]
    target = os.path.join(out_dir, "{}_{}.mp4".format(stem, "splash" if splash else
                                                      "detections"))
    try:
        reader = imageio.get_reader(video_path)
    except Exception as e:
        raise CliError("--video {}: cannot read it as a video ({})".format(video_path, e))
    meta = reader.get_meta_data()
    fps = meta.get("fps") or 25
    frames = meta.get("nframes")
    if not isinstance(frames, int):  # ffmpeg reports inf; estimate from the duration
        frames = int(round(meta["duration"] * fps)) if meta.get("duration") else None
    part = target + ".part.mp4"
    writer = imageio.get_writer(part, fps=fps, macro_block_size=1)
    count = 0
    try:
        for count, frame in enumerate(tqdm(reader, desc="video", unit="frame",
                                           total=frames), start=1):
            frame = np.asarray(frame)[..., :3]
            r = model.detect([frame], verbose=0)[0]
            writer.append_data(render(frame, r, class_names, splash))
            if records is not None:
                records.append(detection_record("{}#{}".format(os.path.basename(video_path),
                                                               count - 1), r, class_names))
    finally:
        writer.close()
        reader.close()
    os.replace(part, target)
    print("{}: {} frames -> {}".format(video_path, count, target))
    return target


def cmd_inspect(sample, args):
    """Draw the first --count images of a subset with their ground-truth masks and boxes
    (checks that a dataset loads as intended before training on it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .. import utils, visualize
    subset = args.subset or "train"
    dataset = sample.load_dataset(args.dataset, subset, args)
    if dataset is None:
        raise CliError("--dataset {}: the {} subset holds no images; use --subset all"
                       .format(args.dataset, subset))
    ids = list(dataset.image_ids[:args.count])
    cols = min(len(ids), 4)
    rows = (len(ids) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 4.5 * rows), squeeze=False)
    counts = []
    for ax, image_id in zip(axes.ravel(), ids):
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask_checked(image_id, image_shape=image.shape)
        counts.append(len(class_ids))
        crowded = len(class_ids) > 20  # many small instances: masks only, no captions
        visualize.display_instances(image, utils.extract_bboxes(masks), masks, class_ids,
                                    dataset.class_names, ax=ax, show_bbox=not crowded,
                                    captions=[""] * len(class_ids) if crowded else None,
                                    title="{} ({} instances)"
                                    .format(str(dataset.image_reference(image_id))[-24:],
                                            len(class_ids)))
    for ax in axes.ravel()[len(ids):]:
        ax.axis("off")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "{}_{}_ground_truth.png".format(sample.name, subset))
    fig.savefig(path, dpi=args.dpi, bbox_inches="tight")
    plt.close(fig)
    print("{} subset: {} images, {} classes ({}); drew {} images ({} instances) -> {}".format(
        subset, len(dataset.image_ids), dataset.num_classes - 1,
        ", ".join(dataset.class_names[1:6]) + (" ..." if dataset.num_classes > 6 else ""),
        len(ids), sum(counts), path))
    return path
