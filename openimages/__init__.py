"""Open Images V5 subset downloader (does not import TensorFlow)."""
