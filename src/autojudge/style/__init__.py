"""Style: what a judge rewards besides the prompt. `features` computes per-image style
features (size, aspect, brightness, contrast, colourfulness, sharpness, complexity, text
area); the style-controlled Bradley-Terry fit over them is autojudge.ratings.style_control.

The feature names live here (no numpy import), so the settings schema can check
`ratings.control` without loading anything.
"""

#: every feature `features.image_features` computes from the pixels, in a fixed order
PIXEL_FEATURES = ("log_pixels", "aspect", "brightness", "contrast", "colourfulness",
                  "sharpness", "complexity")
#: features that need another judge's output (OCR boxes): battle logs may carry them
OCR_FEATURES = ("text_area",)
FEATURES = PIXEL_FEATURES + OCR_FEATURES
