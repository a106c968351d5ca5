"""Install the ``mrcnn`` library and the ``openimages`` subset downloader.

``pip install -e .[dev]`` gives the library plus the test tools.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "mrcnn", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def read_readme():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.10,<4",
    # imgaug 0.4.0 (its last release) uses np.sctypes, removed in NumPy 2.
    "numpy>=1.26,<2",
    "scipy>=1.11",
    "scikit-image>=0.22",
    "imgaug==0.4.0",
    "pandas>=2.0",
    "h5py>=3.8",
    "boto3>=1.28",
    "requests>=2.28",
    "matplotlib>=3.7",
    "pycocotools>=2.0.7",
    "Pillow>=10",
    "tqdm>=4.60",
    "tensorboard>=2.16",
    # video in and out for the samples' detect --video
    "imageio>=2.30",
    "imageio-ffmpeg>=0.4.9",
]

EXTRAS = {
    "albumentations": ["albumentations>=1.4"],
    # experiment tracking (mrcnn.tracking.MLflowCallback); the full "mlflow" works too
    "mlflow": ["mlflow-skinny>=2.10"],
    # python -m mrcnn.export --format onnx (SavedModel needs only TensorFlow)
    "export": ["tf2onnx>=1.17", "onnx>=1.16", "onnxruntime>=1.18"],
    # python -m mrcnn.demo (the web page)
    "demo": ["gradio>=5.0"],
    # mrcnn convert torchvision reads .pth files without torch; torch is only the
    # fallback for files its reader refuses (and what the parity test runs torchvision on)
    "torch": ["torch>=2.0", "torchvision>=0.15"],
    "dev": [
        "pytest>=7.4",
        # scripts/test.sh runs the suite in two worker processes
        "pytest-xdist>=3.8",  # 3.8: --no-loadscope-reorder (scripts/test.sh)
        "moto[server]>=5.0",
        "albumentations>=1.4",
        "mlflow-skinny>=2.10",
        "tf2onnx>=1.17",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "gradio>=5.0",
        # drives the demo in the system's Chromium (no browser download)
        "playwright>=1.40",
    ],
}

setup(
    name="mrcnn",
    version=read_version(),
    description="Mask R-CNN for Keras 3 / TensorFlow 2 in the Matterport style, "
    "with an Open Images V5 subset downloader",
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["mrcnn", "mrcnn.*", "openimages", "openimages.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "openimages-download=openimages.__main__:main",
            "mrcnn=mrcnn.cli:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
