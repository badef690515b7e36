"""The /find box: a case code as an officer types it, turned into the stored form.

Case codes are ASCII (contract v1.1: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) and the one-stop systems
write the agency part in capitals (`000.00.02.H99-261116-00001`). An officer types it in any case,
with spaces, or pasted with a typographic dash: case and spaces must not matter.
"""

from __future__ import annotations

import re
import unicodedata

# dashes and dots that word processors and phone keyboards put in place of the ASCII ones
_LOOKALIKES = str.maketrans({"‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "−": "-", "·": "."})


def normalise_code(text: str) -> str:
    """The code as typed, without spaces, with full-width and look-alike characters made ASCII."""
    text = unicodedata.normalize("NFKC", text).translate(_LOOKALIKES)
    return re.sub(r"\s+", "", text)


def code_variants(text: str) -> list[str]:
    """The codes to try, the most likely first: the stored form (upper case, as the one-stop systems
    write it), then exactly as typed, then lower case; each once. Empty for an empty box."""
    code = normalise_code(text)
    if not code:
        return []
    variants = [code.upper(), code, code.lower()]
    return list(dict.fromkeys(variants))
