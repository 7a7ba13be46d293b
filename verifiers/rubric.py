"""The judge rubric shared by the local VLM judge and the API judge.

Aspects (names the WeightedPotential weights refer to; EACPS edit preset: consistency 1.0,
realism 4.0, identity 1.5). ``consistency`` and ``identity`` compare the candidate with the
reference image, so the judge is shown the reference AND the candidate.
"""

from __future__ import annotations

from .base import VerifierError

ASPECTS = ("prompt_adherence", "realism", "consistency", "identity")
NEEDS_REFERENCE = frozenset({"consistency", "identity"})

QUESTIONS = {
    "prompt_adherence": "How well does the candidate image show what the prompt asks for? Prompt: \"{prompt}\"",
    "realism": "How realistic, natural and free of artifacts (distorted anatomy, garbled text, smears) "
               "is the candidate image?",
    "consistency": "The candidate is an edit of the reference image made for the instruction \"{prompt}\". "
                   "How well does it keep everything the instruction did not ask to change (layout, "
                   "background, lighting, style)?",
    "identity": "How clearly is the main subject of the reference image (the same person, face, animal or "
                "object) still the same individual in the candidate image?",
}


def parse_aspects(text: str) -> tuple[str, ...]:
    """'prompt_adherence, realism' -> ('prompt_adherence', 'realism'), checked and de-duplicated."""
    names = []
    for part in text.replace(";", ",").split(","):
        name = part.strip()
        if not name:
            continue
        if name not in ASPECTS:
            raise VerifierError(f"unknown judge aspect '{name}'; choose from {', '.join(ASPECTS)}")
        if name not in names:
            names.append(name)
    if not names:
        raise VerifierError(f"no judge aspect chosen; choose one or more of {', '.join(ASPECTS)}")
    return tuple(names)


def question(aspect: str, prompt: str) -> str:
    return QUESTIONS[aspect].format(prompt=prompt.replace('"', "'"))
