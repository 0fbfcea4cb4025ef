"""Name keys: one spelling-blind form of a name, shared by search and duplicate detection.

Latin transliterations of the same Persian or Arabic name differ mostly in vowels,
doubled letters and a few consonant spellings; `latin_key` drops exactly those, so
Mohammad, Mohammed and Muhammad share a key. A name in Persian or Arabic script is
first transliterated to Latin letters, so that محمد gets the same key as Mohammad.

`name_key` is what Person stores (Person.name_key, filled by Person.save() and by the
bulk writers) and what the case list's search compares with: the keys of every word
and of every whole name, each between spaces, so that a search matches whole words.

`match_keys` are the two keys the roster import's probable-duplicate search pairs
persons by (with the year of birth): the Latin family and given names' keys, and the
native name's. Person stores them too (Person.match_latin and match_native), indexed,
so that the database finds a file's look-alikes among a million persons on record.
`stored_keys` is every key Person stores, for whoever writes a person's names.
"""

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterator

# Latin spellings of one sound, folded to one of them.
_LATIN_SPELLINGS = [("ph", "f"), ("w", "v"), ("q", "gh"), ("ou", "u"), ("oo", "u"), ("ee", "i"), ("dh", "z")]
_VOWELS = re.compile(r"[aeiouy]")
_DOUBLES = re.compile(r"(.)\1+")
# Arabic and Persian letters written in several ways, and the marks that are optional.
_NATIVE_SPELLINGS = str.maketrans(
    {"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "أ": "ا", "إ": "ا", "آ": "ا", "ؤ": "و", "ـ": None, "\u200c": None}
)

# Persian and Arabic letters (after _NATIVE_SPELLINGS) as Latin letters. Short vowels
# are not written in the script and long ones become vowels: latin_key drops both, so
# only the consonants have to agree. ع is a vowel onset (Ali, Abbas, Jafari).
_TO_LATIN = {
    "ا": "a",
    "ب": "b",
    "پ": "p",
    "ت": "t",
    "ث": "s",
    "ج": "j",
    "چ": "ch",
    "ح": "h",
    "خ": "kh",
    "د": "d",
    "ذ": "z",
    "ر": "r",
    "ز": "z",
    "ژ": "zh",
    "س": "s",
    "ش": "sh",
    "ص": "s",
    "ض": "z",
    "ط": "t",
    "ظ": "z",
    "ع": "a",
    "غ": "gh",
    "ف": "f",
    "ق": "gh",
    "ک": "k",
    "گ": "g",
    "ل": "l",
    "م": "m",
    "ن": "n",
    "ه": "h",
    "ی": "i",
    "ء": "",
    "ئ": "i",
}
# و is a consonant (Javad) or a vowel (Mousavi's first); a word gets a key for each
# reading of up to this many, so that either spelling in Latin finds it.
_MAX_AMBIGUOUS = 3
# Words of a name are split on white space, hyphens and similar punctuation.
_WORD_SEPARATORS = re.compile(r"[\s\-‐‑–—_.,;/']+")


@functools.lru_cache(maxsize=65_536)
def latin_key(name: str) -> str:
    """Mohammad, Mohammed and Muhammad give the same key; so do Hossein and Hussein."""
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(char for char in text if char.isascii() and char.isalpha())
    for spelling, common in _LATIN_SPELLINGS:
        text = text.replace(spelling, common)
    # A final -eh / -ah is the same vowel as -e / -a (Fatemeh, Fatima).
    text = re.sub(r"(?<=[aeiouy])h$", "", text)
    if not text:
        return ""
    # An initial vowel is kept as one mark so Ahmad and Hamed stay apart (Esfahani = Isfahani).
    head = "a" if _VOWELS.match(text[0]) else ""
    return head + _DOUBLES.sub(r"\1", _VOWELS.sub("", text))


@functools.lru_cache(maxsize=65_536)
def native_key(name: str) -> str:
    """A name in Persian or Arabic script with its letter forms and optional marks made one."""
    text = "".join(char for char in unicodedata.normalize("NFKD", name) if not unicodedata.combining(char))
    return "".join(text.translate(_NATIVE_SPELLINGS).split())


def _is_native(word: str) -> bool:
    return any("\u0600" <= char <= "\u06ff" for char in word)


def _transliterations(word: str) -> Iterator[str]:
    """A word in Persian or Arabic script as Latin letters, once per reading of its ambiguous و."""
    letters = native_key(word)
    readings: list[tuple[str, ...]] = []
    ambiguous = 0
    for index, letter in enumerate(letters):
        if letter == "و":
            # Word-initial و is v (Vahid); between vowels too (Javad). Elsewhere either.
            if index == 0 or letters[index - 1] == "ا":
                readings.append(("v",))
            elif ambiguous < _MAX_AMBIGUOUS:
                ambiguous += 1
                readings.append(("u", "v"))
            else:
                readings.append(("u",))
        elif letter == "ه" and index == len(letters) - 1 and index > 0:
            readings.append(("eh",))  # a final ه is a vowel: Fatemeh, Somayeh
        else:
            readings.append((_TO_LATIN.get(letter, letter),))
    for combination in itertools.product(*readings):
        yield "".join(combination)


@functools.lru_cache(maxsize=65_536)
def word_keys(word: str) -> frozenset[str]:
    """The keys of one word typed in either script (several for an ambiguous native word)."""
    latin = _transliterations(word) if _is_native(word) else [word]
    keys = {latin_key(spelling) for spelling in latin}
    keys.discard("")
    return frozenset(keys)


def words(text: str) -> list[str]:
    return [word for word in _WORD_SEPARATORS.split(text) if word]


# The most a stored name key may hold (Person.name_key's max_length).
NAME_KEY_LENGTH = 255


def name_key(family_name: str, given_name: str, native_name: str = "") -> str:
    """The key stored on a person: every word's keys and each whole name's, between spaces.

    "Abdul-Rahman" gives the keys of Abdul and Rahman and of Abdulrahman, so either way
    of writing it matches. Whole words are kept until NAME_KEY_LENGTH is reached.
    """
    keys: dict[str, None] = {}
    for name in (family_name, given_name, native_name):
        parts = words(name)
        for word in parts:
            keys.update(dict.fromkeys(sorted(word_keys(word))))
        if len(parts) > 1:
            keys.update(dict.fromkeys(sorted(word_keys("".join(parts)))))
    stored = " "
    for key in keys:
        if len(stored) + len(key) + 1 > NAME_KEY_LENGTH:
            break
        stored += key + " "
    return stored if keys else ""


def match_keys(family_name: str, given_name: str, native_name: str = "") -> tuple[str, str]:
    """The keys two persons must share (with their year of birth) to be probable
    duplicates: the family and given names' Latin keys ("" unless both have one), and
    the native name's key. Keys hold no spaces: the Latin pair is unambiguous."""
    family, given = latin_key(family_name), latin_key(given_name)
    return (f"{family} {given}" if family and given else ""), (native_key(native_name) if native_name else "")


# The fields of Person that stored_keys fills.
STORED_KEYS = ("name_key", "match_latin", "match_native")


def stored_keys(family_name: str, given_name: str, native_name: str = "") -> dict[str, str]:
    """Every key Person stores of these names, by field."""
    latin, native = match_keys(family_name, given_name, native_name)
    return {"name_key": name_key(family_name, given_name, native_name), "match_latin": latin, "match_native": native}
