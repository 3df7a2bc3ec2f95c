"""autojudge: automated-judge evaluation harness for text-to-image and image-editing models."""
__version__ = "0.1.0"
