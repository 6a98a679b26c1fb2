"""Exports: OpenVINO IR pairs (``export.openvino``)."""
