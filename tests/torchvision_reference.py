"""Run under a Python with torch + torchvision (not TensorFlow): the reference side of
tests/test_torchvision.py's parity test.

    python tests/torchvision_reference.py OUT_DIR IMAGE.npy [IMAGE.npy ...]

Builds torchvision's ``maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)``
with seeded random weights, rescaled so that its detections are confident and distinct
(no trained file is needed), saves its state_dict as OUT_DIR/model.pth (the zip format;
OUT_DIR/model_legacy.pth in the pre-1.6 format), runs it on each image (uint8 [H, W, 3]
arrays whose sides are multiples of 64, so that nothing is resized or padded), and writes
OUT_DIR/ref_<i>.npz with the detections and the intermediate tensors.
"""
import os
import sys

import numpy as np
import torch
import torchvision
from torchvision.models.detection import maskrcnn_resnet50_fpn

SCORE_THRESH = 0.02


def randomise(model, seed=0):
    """Seeded random weights that give a well-conditioned, confident network."""
    g = torch.Generator().manual_seed(seed)

    def rand(shape, scale=1.0):
        return torch.randn(shape, generator=g) * scale

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d) or \
                    type(module).__name__ == "FrozenBatchNorm2d":
                c = module.weight.shape[0]
                module.weight.copy_(0.5 + torch.rand(c, generator=g))
                module.bias.copy_(rand(c, 0.1))
                module.running_mean.copy_(rand(c, 0.1))
                module.running_var.copy_(0.5 + torch.rand(c, generator=g))
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d,
                                     torch.nn.Linear)):
                w = module.weight
                fan_in = w[0].numel() if not isinstance(module, torch.nn.ConvTranspose2d) \
                    else w.shape[0] * w.shape[2] * w.shape[3] // 4
                w.copy_(rand(w.shape, np.sqrt(2.0 / fan_in)))
                if module.bias is not None:
                    module.bias.copy_(rand(module.bias.shape, 0.05))
        # keep the residual stages from blowing up: scale each block's last BN
        for name, module in model.backbone.body.named_modules():
            if name.endswith("bn3"):
                module.weight.mul_(0.3)
        # pyramid levels of about unit size
        for block in model.backbone.fpn.layer_blocks:
            block[0].weight.mul_(0.1)
        # objectness logits spread over a few units (no sigmoid saturation: ties)
        head = model.rpn.head
        head.bbox_pred.weight.mul_(0.2)
        # confident, distinct classes; moderate box refinements
        predictor = model.roi_heads.box_predictor
        predictor.cls_score.weight.mul_(2.5)
        model.roi_heads.mask_predictor.mask_fcn_logits.weight.mul_(4.0)


def main(out_dir, image_paths):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                  box_score_thresh=SCORE_THRESH)
    randomise(model)
    model.eval()
    os.makedirs(out_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out_dir, "model.pth"))
    torch.save(model.state_dict(), os.path.join(out_dir, "model_legacy.pth"),
               _use_new_zipfile_serialization=False)

    captured = {}

    def keep(name):
        def hook(module, inputs, output):
            captured[name] = output
        return hook

    model.backbone.body.register_forward_hook(keep("body"))
    model.backbone.register_forward_hook(keep("fpn"))
    model.rpn.head.register_forward_hook(keep("rpn_head"))
    model.rpn.register_forward_hook(keep("rpn"))
    model.roi_heads.box_predictor.register_forward_hook(keep("box_predictor"))

    for i, path in enumerate(image_paths):
        image = np.load(path)
        h, w = image.shape[:2]
        # no resize (scale exactly 1) and no padding (sides are multiples of 64)
        model.transform.min_size = (min(h, w),)
        model.transform.max_size = max(h, w)
        x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        with torch.no_grad():
            out = model([x])[0]
        nchw = lambda t: t[0].permute(1, 2, 0).numpy()  # noqa: E731 -> [H, W, C]
        body, fpn = captured["body"], captured["fpn"]
        objectness, _ = captured["rpn_head"]
        # objectness per level [1, A, H, W] -> [H * W * A] (torchvision's anchor order)
        logits = np.concatenate([o[0].permute(1, 2, 0).reshape(-1).numpy() for o in objectness])
        proposals = captured["rpn"][0][0].numpy()
        class_logits, box_regression = captured["box_predictor"]
        np.savez(os.path.join(out_dir, "ref_{}.npz".format(i)),
                 boxes=out["boxes"].numpy(), labels=out["labels"].numpy(),
                 scores=out["scores"].numpy(), masks=out["masks"][:, 0].numpy(),
                 C2=nchw(body["0"]), C3=nchw(body["1"]), C4=nchw(body["2"]),
                 C5=nchw(body["3"]), P2=nchw(fpn["0"]), P3=nchw(fpn["1"]), P4=nchw(fpn["2"]),
                 P5=nchw(fpn["3"]), P6=nchw(fpn["pool"]), rpn_logits=logits,
                 proposals=proposals, class_logits=class_logits.numpy())
        print("image {}: {}x{}, {} detections, {} proposals".format(
            i, h, w, len(out["boxes"]), len(proposals)))
    print("torch", torch.__version__, "torchvision", torchvision.__version__)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
