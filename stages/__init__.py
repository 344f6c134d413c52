"""The pipeline stages, one thin script each; run as `python -m stages.<name>` (see dvc.yaml)."""
