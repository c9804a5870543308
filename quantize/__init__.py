"""Turn a trained float model into a full-integer int8 ``.tflite`` bundle and measure what it cost."""
