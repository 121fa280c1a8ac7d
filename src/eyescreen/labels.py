"""Class names in the order of the model's output vector, shared by training and inference."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("normal", "cataract", "glaucoma", "retina_disease")

# Folder names that people commonly use for the same classes, mapped to the canonical name.
ALIASES: dict[str, str] = {
    "normal": "normal",
    "cataract": "cataract",
    "glaucoma": "glaucoma",
    "retina_disease": "retina_disease",
    "retina disease": "retina_disease",
    "retina-disease": "retina_disease",
    "retinadisease": "retina_disease",
    "diabetic_retinopathy": "retina_disease",
}


def canonical_label(name: str) -> str | None:
    """Map a folder or manifest label to a name in CLASSES, or None if it is not one."""
    return ALIASES.get(name.strip().lower().replace("-", "_").replace(" ", "_")) or ALIASES.get(name.strip().lower())
