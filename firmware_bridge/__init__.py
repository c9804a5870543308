"""Bundle → firmware: C/C++/Arduino files, the TFLM-measured arena, and the MCU cost profile.

``export.export_firmware`` writes the files; ``arena`` measures the tensor arena in the real TFLM
interpreter; ``profile`` reads per-layer MACs/parameters/activations from the flatbuffer;
``frontend_c`` ports each device front end to C99. See docs/firmware.md.
"""
