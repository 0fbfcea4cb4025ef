"""Name keys: one spelling-blind form of a name, shared by search and duplicate detection.

Latin transliterations of the same Persian or Arabic name differ mostly in vowels,
doubled letters and a few consonant spellings; `latin_key` drops exactly those, so
Mohammad, Mohammed and Muhammad share a key. A name in Persian or Arabic script is
first transliterated to Latin letters, so that محمد gets the same key as Mohammad.

`name_key` is what Person stores (Person.name_key, filled by Person.save() and by the
bulk writers) and what the case list's search compares with: the keys of every word
and of every whole name, each between spaces, so that a search matches whole words.

`match_keys` are the two keys the roster import's probable-duplicate search pairs
persons by (with the year of birth): the Latin family and given names' key, and the
native name's. They fold more than the search's keys (particles, Somali, Tigrinya and
Egyptian spellings; Pashto, Kurdish, Urdu and Ge'ez letters) and ignore which name
comes first: a search lists what an officer reads through, a duplicate is a pair an
officer is asked to decide on, so the folds that would join other names are left out
(see match_keys). Person stores them too (Person.match_latin and match_native),
indexed, so that the database finds a file's look-alikes among a million persons on
record; a change to them comes with a migration that computes them again (0021).
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


# The match keys fold further than latin_key, for spellings that are one name in one
# language and two in another would be too many for the search: whole words first, then
# letters, on the casefolded ASCII letters of each word.
_MATCH_WORDS = {
    "md": "mohammad",
    "mhd": "mohammad",
    "mohd": "mohammad",
    "muhd": "mohammad",
    "mehmet": "mohammad",
    "mehmed": "mohammad",
    "muhammet": "mohammad",
    # Egyptian and Sudanese g is j (ج): only where the name is not another name in g or k.
    "gamal": "jamal",
    "gaafar": "jafar",
    # ث written th or s in these names only (not Thamer/Samir, Haitham/Hossam, Thana/Sana).
    "othman": "osman",
    "uthman": "osman",
    # ق written g (Sudanese) in this name only (not Kamil/Gamil, Raqib/Ragab); q and k
    # are one everywhere (_MATCH_SPELLINGS).
    "gasim": "qasim",
}
# The article, written as a word (Al Hashimi, Nour El Din, Zia ul Haq): left out. Written
# into a name, it is left out before one (Alhashimi, Elsayed: _JOINED_ARTICLE) or
# within one before a consonant and a vowel (Noureldin, Ziaulhaq: _INNER_ARTICLE); as
# it assimilates (Nureddin, Salahuddin), it is a doubled letter, which latin_key reads once.
_ARTICLES = frozenset({"al", "el", "ul"})
# "Son of", "daughter of": left out wherever they stand (Mohammad bin Salman).
_FILIATIONS = frozenset({"bin", "ibn", "ben", "ould", "wad"})
# Al- or El- written into the name (Alhashimi, Elsayed) before at least four letters
# (not Elham, Alavi, Alireza: a vowel or a short name follows).
_JOINED_ARTICLE = re.compile(r"^[ae]l(?=[^aeiouy][a-z]{3})")
_INNER_ARTICLE = re.compile(r"(?<=[a-z]{3})[aeiu]l(?=[^aeiouly][aeiou])")
# A Somali word-initial c is ع, a vowel onset: Cabdi, Cumar, Cusmaan.
_SOMALI_C = re.compile(r"^c(?=[aeiou])")
# Abd (servant of) and what joins it to the next name, within a word or across words
# (|): Abdul Rahman, Abd ar-Rahman, Abdurrahman (a sun letter doubles), Abdirahman,
# Abd Allah, Abd al-Rahman.
_ABD = re.compile(r"(?:^|(?<=\|))abd\|?(?:[aeiou]?l|[aeiou]?(?=([dnrstz])\|?\1)[dnrstz]|[aeiou](?=\|?[^aeiou|]))?")
# Letters written two ways in one name. ق is written q, k or gh (Tariq, Tarik; Sadeqi,
# Sadeghi; Qasim, Kassim): q, gh and k are one, which also makes Bagheri and Bakri one
# (a look-alike to decide on, rather than a duplicate missed). Tigrinya gh is g at the
# start of these names (Ghebre, Gebre; Ghirmay, Girmay); g is otherwise another letter
# (Gamil is not Kamil), and so are th and s (Thamer is not Samir).
_MATCH_SPELLINGS = [
    ("|", ""),
    ("dj", "j"),  # Djafar
    ("x", "h"),  # Somali x is ح: Maxamed, Axmed
    ("medhin", "medin"),  # Tigrinya መድኅን: Gebremedhin (d then h, not ذ)
    ("medhan", "medan"),
    ("ghebre", "gebre"),
    ("ghirm", "girm"),
    ("gh", "k"),
    ("q", "k"),
]
# A name that ends in i (Ahmadi, Rezaei, Rezaie, Jafary) is a name of its own: of Ahmad,
# of Reza. The ending is kept so that Karimi Abbas, the columns swapped, is not Abbasi
# Karim. Tigrinya -ay is Amharic -aye (Tesfay, Tesfaye).
_FINAL_I = re.compile(r"(?:i|y|ee|ie|(?<=a)ye)$")


@functools.lru_cache(maxsize=65_536)
def _match_word(word: str) -> str:
    """One word as the Latin match key reads it: its ASCII letters, folded."""
    text = unicodedata.normalize("NFKD", word.casefold())
    text = "".join(char for char in text if char.isascii() and char.isalpha())
    return _SOMALI_C.sub("", _MATCH_WORDS.get(text, text))


@functools.lru_cache(maxsize=65_536)
def _latin_match(name: str) -> str:
    """A family or given name as the Latin match key compares it: its words' letters
    folded and keyed together, so that Abdul Rahman is Abdulrahman and Ali Asghar is
    Aliasghar; without its articles and filiations."""
    keys = [key for key in map(_match_word, words(name)) if key and key not in _FILIATIONS | _ARTICLES]
    if keys:
        keys[0] = _JOINED_ARTICLE.sub("", keys[0])
    text = _ABD.sub("abd", "|".join(keys))
    for spelling, common in _MATCH_SPELLINGS:
        text = text.replace(spelling, common)
    text = _INNER_ARTICLE.sub("", text)
    key = latin_key(text)
    return key + "i" if key and _FINAL_I.search(text) else key


# Letters of other languages' scripts written as the Persian or Arabic letter they are
# in a name: Pashto, Kurdish and Urdu letters; Ge'ez syllables of one sound (ፀ/ጸ,
# ሐ/ኀ/ሀ, ሠ/ሰ, ዐ/አ, in their seven vowel orders), and the laryngeals' first and
# fourth orders (ሃ/ሀ, ኣ/አ), which are written either way.
_OTHER_LETTERS = {
    "ګ": "گ",
    "ڪ": "ک",
    "ې": "ی",
    "ۍ": "ی",
    "ێ": "ی",
    "ے": "ی",
    "ە": "ه",
    "ہ": "ه",
    "ھ": "ه",
    "ۃ": "ه",
    "ټ": "ت",
    "ٹ": "ت",
    "ډ": "د",
    "ڈ": "د",
    "ړ": "ر",
    "ڑ": "ر",
    "ڕ": "ر",
    "ڼ": "ن",
    "ں": "ن",
    "ۆ": "و",
    "ڵ": "ل",
}
_NATIVE_MATCH_SPELLINGS: dict[int, str | None] = {
    **_NATIVE_SPELLINGS,
    **{ord(letter): common for letter, common in _OTHER_LETTERS.items()},
}
_LARYNGEALS = (0x1200, 0x12A0)
for _source, _target in [
    (0x1340, 0x1338),
    (0x1210, 0x1200),
    (0x1280, 0x1200),
    (0x1220, 0x1230),
    (0x12D0, 0x12A0),
    *((base, base) for base in _LARYNGEALS),
]:
    for _order in range(7):
        _folded = _target + (0 if _target in _LARYNGEALS and _order == 3 else _order)
        if _source + _order != _folded:
            _NATIVE_MATCH_SPELLINGS[_source + _order] = chr(_folded)
# Invisible format characters (Unicode category Cf) come in with pasted names. Direction
# marks, zero-width spaces and the joiner stand for a space (pasted beside one or for
# one); any other is left out where it is: a soft hyphen, and the zero-width non-joiner,
# which Persian writes within a word (علی‌رضا is one name).
_NATIVE_WORD_SEPARATORS = re.compile(
    r"[\s\-‐‑–—_.,;/'،؛\u061c\u200b\u200d-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]+"
)


@functools.lru_cache(maxsize=65_536)
def _native_word(word: str) -> str:
    """One word of a native name as the native match key compares it."""
    text = "".join(
        char
        for char in unicodedata.normalize("NFKD", word)
        if not unicodedata.combining(char) and unicodedata.category(char) != "Cf"
    )
    return text.translate(_NATIVE_MATCH_SPELLINGS)


@functools.lru_cache(maxsize=65_536)
def native_words(name: str) -> frozenset[str]:
    """A native name's words as the native match key reads them (for telling two names
    from one name written otherwise: see cases.importing._written_apart)."""
    return frozenset(key for key in map(_native_word, _NATIVE_WORD_SEPARATORS.split(name)) if key)


@functools.lru_cache(maxsize=65_536)
def native_spelling(name: str) -> str:
    """A native name as its letters read, whatever its spaces and whichever of its names
    comes first: its words' letters run together, so that a compound name is one written
    with a space or without (محمدرضا, محمد رضا), and read from the least of their
    rotations, so that the given name may come before the family name or after it (محمد
    احمدی, احمدی محمد)."""
    letters = "".join(key for key in map(_native_word, _NATIVE_WORD_SEPARATORS.split(name)) if key)
    if not letters:
        return ""
    # The least rotation begins with the least letter.
    least = min(letters)
    return min(letters[at:] + letters[:at] for at, letter in enumerate(letters) if letter == least)


@functools.lru_cache(maxsize=65_536)
def _native_match(name: str) -> str:
    """The native match key: the name's spelling (native_spelling), if it has two words
    or more: one word (a given name alone) with a year of birth pairs strangers."""
    parts = [key for key in map(_native_word, _NATIVE_WORD_SEPARATORS.split(name)) if key]
    return native_spelling(name) if len(parts) > 1 else ""


def match_keys(family_name: str, given_name: str, native_name: str = "") -> tuple[str, str]:
    """The keys two persons must share (with their year of birth) to be probable
    duplicates: the Latin key of the family and given names ("" unless both have one),
    and the native name's ("" unless it has two words or more).

    Both are blind to order: the family and given names may be in each other's column,
    and a native name may start with either (its words run together: a compound name is
    one with or without its space). The Latin key folds more than latin_key: the
    article before a name (Al-Jubouri is Jubouri, Elsayed is Sayed; within a name it
    stays: Zia ul Haq is Ziaulhaq) and bin, ibn, ben, ould and wad are left out; Abd and
    its article are one (Abdul Rahman, Abd ar-Rahman, Abdurrahman, Abdirahman); Somali
    x and initial c (Maxamed, Cabdullahi, Cumar); dj (Djafar); Tigrinya Ghebre and
    Ghirmay (Gebre, Girmay); q, gh and k, all ق in some name (Tariq, Tarik; Sadeqi,
    Sadeghi: so Bagheri and Bakri are look-alikes to decide on); a final -ie (Rezaie);
    and a few names by name: Mohd, Md and Mehmet are Mohammad, Gamal Jamal, Gaafar
    Jafar, Othman Osman, Gasim Qasim. Letters that are one in some names and two in
    others (th and s, g and k) are not folded: Thamer is not Samir, Gamil not Kamil.
    The native key leaves out invisible format characters and folds Pashto, Kurdish and
    Urdu letters to their Persian and Arabic forms, and Ge'ez letters of one sound.
    """
    family, given = _latin_match(family_name), _latin_match(given_name)
    latin = " ".join(sorted((family, given))) if family and given else ""
    return latin, (_native_match(native_name) if native_name else "")


# The fields of Person that stored_keys fills.
STORED_KEYS = ("name_key", "match_latin", "match_native")


def stored_keys(family_name: str, given_name: str, native_name: str = "") -> dict[str, str]:
    """Every key Person stores of these names, by field."""
    latin, native = match_keys(family_name, given_name, native_name)
    return {"name_key": name_key(family_name, given_name, native_name), "match_latin": latin, "match_native": native}
