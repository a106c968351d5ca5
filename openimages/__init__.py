"""Open Images V5 subset downloader: class-filtered images plus only the masks needed.

``openimages.download`` (and ``python -m openimages download``) never imports
TensorFlow; ``openimages.dataset`` (the mrcnn Dataset) imports mrcnn.
"""
