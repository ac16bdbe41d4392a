"""The repository's LICENSE (MIT, as pyproject.toml says) and its CITATION.cff (software, and the paper it
replicates)."""

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_license_is_mit_as_pyproject_says():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the skipvae authors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "MIT"


def test_citation_cff():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] == "skipvae" and cff["type"] == "software"
    assert cff["license"] == "MIT" and cff["message"].strip()
    assert cff["authors"] == [{"name": "the skipvae authors"}]
    papers = [r for r in [cff.get("preferred-citation"), *cff.get("references", [])] if r]
    paper = next(r for r in papers if r["title"] == "Avoiding Latent Variable Collapse With Generative Skip Models")
    assert [(a["given-names"], a["family-names"]) for a in paper["authors"]] == [
        ("Adji B.", "Dieng"), ("Yoon", "Kim"), ("Alexander M.", "Rush"), ("David M.", "Blei")]
    assert paper["year"] == 2019 and "AISTATS" in paper["conference"]["name"]
    assert {"type": "other", "value": "arXiv:1807.04863"}.items() <= paper["identifiers"][0].items()
