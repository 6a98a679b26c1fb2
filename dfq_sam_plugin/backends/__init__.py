"""Backend adapters over the backend-free cores: ``backends.nncf`` (OpenVINO IR) and ``backends.brevitas``."""
