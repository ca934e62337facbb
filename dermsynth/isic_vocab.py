"""The ISIC Archive's metadata vocabularies and how they map onto dermsynth's labels and sites.

The value lists come from the `isic-metadata` package (pinned in requirements.lock), the one the ISIC
server and `isic-cli` validate metadata with; this module only says what each value means here. It
imports nothing heavy: the params schema reads `IMAGE_TYPES` from it.

- Malignancy: `diagnosis_1` is the top of ISIC's diagnosis hierarchy, Benign, Malignant or
  Indeterminate. Indeterminate (actinic keratosis, AIMP, atypical Spitz tumour, ...) has no fixed
  label: `ingest.indeterminate` decides. Older exports carry `benign_malignant` or a legacy
  `diagnosis` instead, read only when `diagnosis_1` is empty.
- Site: `anatom_site_1` .. `anatom_site_5` are the levels of ISIC's site hierarchy; the path they
  form is mapped onto `dermsynth.data.subgroups.SITES` by its longest prefix in `SITE_OF_PATH`, which
  holds every level-1 and level-2 value plus the deeper ones that belong to a different group
  (palm, sole, mouth, lips). `anatom_site_special` (acral, oral or genital) comes first; the legacy
  `anatom_site_general` is read only when the hierarchy is empty.
"""
from __future__ import annotations

from importlib.metadata import version

from isic_metadata.fields import (AnatomSiteEnum, AnatomSiteSpecialEnum, DiagnosisEnum, ImageManipulationEnum,
                                  ImageTypeEnum, LegacyDxEnum)

ISIC_METADATA_VERSION = version("isic-metadata")

# every value of the hierarchies, colon-joined levels (for the tests and `dermsynth check`)
ANATOM_SITES: tuple[str, ...] = tuple(e.value for e in AnatomSiteEnum)
DIAGNOSES: tuple[str, ...] = tuple(e.value for e in DiagnosisEnum)
SITE_COLUMNS = tuple(f"anatom_site_{i}" for i in range(1, 6))
DIAGNOSIS_COLUMNS = tuple(f"diagnosis_{i}" for i in range(1, 6))

IMAGE_TYPES: tuple[str, ...] = tuple(e.value for e in ImageTypeEnum)
DERMOSCOPIC = ImageTypeEnum.dermoscopic.value
SYNTHETIC = ImageManipulationEnum.synthetic.value
ALTERED = ImageManipulationEnum.altered.value

INDETERMINATE = "Indeterminate"
# diagnosis_1 -> label; Indeterminate is left to ingest.indeterminate
LABEL_OF_DIAGNOSIS_1 = {"Benign": "benign", "Malignant": "malignant", INDETERMINATE: None}
# the removed `benign_malignant` field (isic-metadata before 2025-06): every indeterminate kind goes to the
# same policy as diagnosis_1 Indeterminate (ISIC itself did not call them benign or malignant)
LABEL_OF_BENIGN_MALIGNANT = {"benign": "benign", "malignant": "malignant", "indeterminate": None,
                             "indeterminate/benign": None, "indeterminate/malignant": None}
# the legacy `diagnosis` (isic_metadata.fields.LegacyDxEnum): "indeterminate" for the values ISIC's new
# hierarchy files under Indeterminate, None for those that name no malignancy (other, adnexal tumor:
# benign or malignant adnexal neoplasms alike)
LABEL_OF_LEGACY_DX: dict[str, str | None] = {
    "actinic keratosis": "indeterminate", "adnexal tumor": None, "AIMP": "indeterminate",
    "angiokeratoma": "benign", "angioma": "benign", "basal cell carcinoma": "malignant",
    "cafe-au-lait macule": "benign", "dermatofibroma": "benign", "ephelis": "benign", "lentigo NOS": "benign",
    "lentigo simplex": "benign", "lichenoid keratosis": "benign", "melanoma": "malignant",
    "melanoma metastasis": "malignant", "merkel cell carcinoma": "malignant", "mucosal melanosis": "benign",
    "nevus": "benign", "nevus spilus": "benign", "seborrheic keratosis": "benign", "solar lentigo": "benign",
    "squamous cell carcinoma": "malignant", "clear cell acanthoma": "benign",
    "atypical spitz tumor": "indeterminate", "acrochordon": "benign", "angiofibroma or fibrous papule": "benign",
    "neurofibroma": "benign", "pyogenic granuloma": "benign", "scar": "benign", "sebaceous adenoma": "benign",
    "sebaceous hyperplasia": "benign", "verruca": "benign", "atypical melanocytic proliferation": "indeterminate",
    "epidermal nevus": "benign", "pigmented benign keratosis": "benign", "vascular lesion": "benign", "other": None,
}
LEGACY_DX_VALUES = tuple(e.value for e in LegacyDxEnum)

# Site path (colon-joined anatom_site_1..5) -> dermsynth site; the longest matching prefix wins.
SITE_OF_PATH: dict[str, str] = {
    # level 1 and level 2: every value of the vocabulary
    "Head and neck": "head_neck",
    "Head and neck:Head": "head_neck",
    "Head and neck:Neck": "head_neck",
    "Trunk": "torso",
    "Trunk:Anterior trunk": "torso",
    "Trunk:Lateral trunk": "torso",
    "Trunk:Posterior trunk": "torso",
    "Upper extremity": "upper_extremity",
    "Upper extremity:Shoulder": "upper_extremity",
    "Upper extremity:Upper arm": "upper_extremity",
    "Upper extremity:Elbow": "upper_extremity",
    "Upper extremity:Forearm": "upper_extremity",
    "Upper extremity:Wrist": "upper_extremity",
    "Upper extremity:Hand": "upper_extremity",
    "Lower extremity": "lower_extremity",
    "Lower extremity:Buttock": "lower_extremity",  # where ISIC's hierarchy files it
    "Lower extremity:Thigh": "lower_extremity",
    "Lower extremity:Knee": "lower_extremity",
    "Lower extremity:Lower leg": "lower_extremity",
    "Lower extremity:Ankle": "lower_extremity",
    "Lower extremity:Foot": "lower_extremity",
    "Anogenital region": "oral_genital",
    "Anogenital region:Perianal region": "oral_genital",
    "Anogenital region:Genital region": "oral_genital",
    # deeper values whose group differs from their parent's: acral skin (the legacy palms/soles) and the
    # mucosa of mouth and lips (the legacy oral/genital); the skin around the mouth stays head_neck
    "Upper extremity:Hand:Palm of hand": "palms_soles",
    "Lower extremity:Foot:Sole of foot": "palms_soles",
    "Head and neck:Head:Face:Mouth": "oral_genital",
    "Head and neck:Head:Face:Oral region:Lip": "oral_genital",
    "Head and neck:Head:Face:Oral region:Lower lip": "oral_genital",
    "Head and neck:Head:Face:Oral region:Upper lip": "oral_genital",
}
# anatom_site_special -> dermsynth site, before the hierarchy; nails keep their limb
SITE_OF_SPECIAL: dict[str, str | None] = {
    "acral NOS": "palms_soles",  # as the legacy "acral" (HAM10000) is
    "acral palms or soles": "palms_soles",
    "oral or genital": "oral_genital",
    "nail NOS": None, "fingernail": None, "toenail": None,
}
SPECIAL_VALUES = tuple(e.value for e in AnatomSiteSpecialEnum)


def site_path(levels: list[str]) -> str:
    """The colon-joined path of anatom_site_1..5 up to the first empty level."""
    parts = []
    for value in levels:
        if not value:
            break
        parts.append(value)
    return ":".join(parts)


def site_of_path(path: str) -> str | None:
    """The dermsynth site of a hierarchical path by its longest known prefix; None when even its first
    level is not in the vocabulary."""
    parts = path.split(":") if path else []
    for n in range(len(parts), 0, -1):
        site = SITE_OF_PATH.get(":".join(parts[:n]))
        if site:
            return site
    return None


def most_specific(levels: list[str]) -> str:
    """The deepest non-empty level (diagnosis_5 before diagnosis_4 ...), '' when all are empty."""
    return next((v for v in reversed(levels) if v), "")
