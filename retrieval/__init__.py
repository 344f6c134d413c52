"""The retrieval pipeline's stage scripts (retrieval/dvc.yaml; `dvc repro retrieval/dvc.yaml`, run from the root)."""
