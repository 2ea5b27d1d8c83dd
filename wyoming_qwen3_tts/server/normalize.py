"""Spell out what Home Assistant writes ("21,5 °C", "10:45", "€ 4,99") as words, per language.

`normalize(text, language)` takes one sentence and a model language name ("german", ...) and
returns the sentence with numbers, units, times, dates, currencies and a few symbols written
as a native speaker says them ("Es ist 21,5 °C." -> "Es ist einundzwanzig Komma fünf Grad
Celsius.").  "auto" or an unknown language returns the text unchanged.  Numbers are spelled
by `num2words` (Chinese by `cn2an`, which num2words lacks); this module holds only the glue
and the per-language tables (unit and currency words with their singular/plural forms and
genders, month names, how a time or a date is said).

What it reads, in all ten languages unless noted:

- numbers with the language's separators: "21.5" in English, Japanese, Korean, Chinese;
  "21,5" in German, French, Spanish, Italian, Portuguese, Russian, where a point with groups of
  exactly three digits groups thousands ("1.234" = 1234) and any other single point is a
  decimal point (Home Assistant's own states say "21.5" whatever the language).  Grouping by
  ",", "." (where it is not the decimal mark), "'" and no-break spaces; plain spaces too in
  French and Russian ("10 000").  When both "," and "." occur, the last one is the decimal
  mark.  Negative ("-5", "−5") and explicit positive ("+5") signs;
- ordinals where marked: "1st" (en), "2." before a capitalised word (de, inflected after the
  article: "am 2. Mai" -> "am zweiten Mai"), "1er"/"1re"/"2e" (fr), "1º"/"1ª"/"1.er" (es, it,
  pt), "1-й"/"2-я"/"3-го" (ru), "2번째" (ko); 第/番目 need nothing (ja, zh);
- percentages, temperatures (°C, °F, ℃, bare °; zh/ko say "零下"/"영하" for negatives),
  currencies (€, $, £, ¥, ₩, ₽, R$, US$, CHF, EUR/USD/GBP before or after the number, with
  cents when there are exactly two decimals; "$1.5 million"), units (km, km/h, mph, m/s, m,
  cm, mm, m², m³, kg, g, l, ml, W, kW, Wh, kWh, MWh, V, A, hPa, mbar, %, ppm, lx, dB, µg/m³,
  min, h, ct; Cyrillic abbreviations too), also "per unit" ("0,30 €/kWh", "32 ct/kWh",
  "5 €/Monat"), and ranges ("20-25 °C", "10-20 Minuten", "zwischen 20-25" -> "zwischen
  zwanzig und fünfundzwanzig");
- agreement: singular/plural of every unit and currency word by the language's rule (French
  and Portuguese keep the singular below 2; Russian one/few/many and the genitive singular
  after a fraction); the gender of the number where the language has one ("eine
  Kilowattstunde", "vingt et une heures", "veintiún kilómetros", "una libra", "duas horas",
  "двадцать одна минута"), also before an ordinary noun, guessed from its ending or a short
  list ("eine Person", "veintiuna personas", "две лампы");
- times: "10:45", "10:45:30", "7 pm"/"7:30 p.m." (en), "7 Uhr", "7.30 Uhr", "07:30 h" (de),
  "7h30"/"21 h" (fr), "H.MM" after a time preposition ("um 7.30", "alle 7.30"), and time
  ranges ("14:00-16:00").  English reads 24-hour times past noon as 12-hour ("14:30" -> "two
  thirty p.m."); Korean says hours in native numbers ("열 시 사십오 분");
- dates: ISO "2026-12-01"; "01.12.2026" and (after "am", "bis", ...) "1.12." (de, ru, ...);
  slashed dates, day first everywhere except English, which reads month first ("12/01/2026" =
  December first) unless the first number is over 12; "2026/12/01"; and dates with month
  names ("1. Dezember 2026", "1er décembre", "1 de diciembre de 2026", "1 декабря 2026 года",
  "December 1st, 2026"); years after "in"/"since"/... (en), 1100-1999 as years (de:
  "neunzehnhundert..."), "2026年" read digit by digit (zh), Korean months (유월, 시월);
- symbols: "&", "+", "@", "#1" (number), "#tag" (hashtag), "/" between words ("or").

What it does not do: Roman numerals, fractions ("1/2" and "24/7" keep their slash), scientific
notation, phone numbers (read as numbers), abbreviations ("z. B."), the grammatical case of
numbers in running text (German "in einer Stunde", Russian outside dates and units), Spanish
"$" as pesos (read as dollars), and context beyond the sentence: the sentence splitter
(segmentation.py) cuts "Heute ist der 1. Dezember." after "1."; German reads such a cut-off
"der 1." / "am 1." as an ordinal ("der erste.", "am ersten."); other languages mark no
ordinal with a bare dot.  A sentence with no detected language ("auto") is left as it is.

Hostile input is bounded: text longer than MAX_INPUT_CHARS is returned unchanged, numbers of
more than MAX_DIGITS digits stay as they are (a dotted IP is read run by run), "1e308"
is not a number (a digit run touching letters is left alone), and every replacement is refused
once the output would grow past GROWTH times the input plus EXTRA characters.  Any piece that
fails to convert stays as it was; `normalize` never raises.  It logs nothing (the caller logs).

Cost, measured here (Intel Xeon, 2 vCPUs): 30-100 us for a sentence with numbers ("Es ist
21,5 °C im Wohnzimmer und die Luftfeuchtigkeit liegt bei 45 %." 78 us), 0.3 us for one without
digits or symbols; `prepare()` takes the one-time imports and pattern compilation (~0.4 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

MAX_INPUT_CHARS = 4000
MAX_DIGITS = 15
GROWTH = 8
EXTRA = 64

__all__ = ["normalize", "prepare", "supported_languages", "MAX_INPUT_CHARS", "MAX_DIGITS", "GROWTH",
           "EXTRA"]


# --------------------------------------------------------------------------------------------
# number words from the kept libraries
@lru_cache(maxsize=8192)
def _n2w(value: int | str, lang: str, to: str = "cardinal", gender: str = "",
         case: str = "") -> str:
    from num2words import num2words

    kwargs = {}
    if gender:
        kwargs["gender"] = gender
    if case:
        kwargs["case"] = case
    from decimal import Decimal

    number = Decimal(value) if isinstance(value, str) else value
    words = num2words(number, lang=lang, to=to, **kwargs)
    return words.replace(",", "")


@lru_cache(maxsize=4096)
def _cn(value: int) -> str:
    import cn2an

    return cn2an.an2cn(str(value), "low")


@dataclass(frozen=True)
class Num:
    """A parsed number: sign ("", "-" or "+"), integer part, digits after the decimal mark."""

    sign: str
    integer: int
    frac: str = ""


@dataclass(frozen=True)
class Noun:
    """A counted word: its forms (singular, plural; Russian: one, few, many[, fraction]),
    its gender ("m", "f", "n"), whether the number agrees with it, and for CJK a word said
    before the number (時速, 百分之)."""

    forms: tuple[str, ...]
    gender: str = "m"
    agrees: bool = True
    prefix: str = ""


def _n(*forms: str, g: str = "m", agrees: bool = True, prefix: str = "") -> Noun:
    return Noun(tuple(forms), g, agrees, prefix)


# --------------------------------------------------------------------------------------------
# shared regular expression pieces
_LETTER = "A-Za-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff"
_WORDCH = f"0-9{_LETTER}_"
_BEFORE = rf"(?<![{_WORDCH}])(?<![0-9][.,'’])"
_AFTER = rf"(?![{_WORDCH}])(?![.,'’]?[0-9])"
_UNIT_AFTER = rf"(?![{_WORDCH}²³])"
_SP = "[ \u00a0\u202f]"

_TRIGGER = re.compile("[0-9\uff10-\uff19&+@#/%°℃℉€$£¥₩₽\uff05]")
_FULLWIDTH = str.maketrans("０１２３４５６７８９％＃＋＆＠", "0123456789%#+&@")
_SPACES = re.compile(" {2,}")
_PREV_WORD = re.compile(r"(\w+)[^\w]*$")
_DOUBLE_DOT = re.compile(r"\b([ap])\.m\.\.")
_NEXT_WORD = re.compile(r"[ \u00a0]([^\W\d_]+)")

_UNIT_ALIASES = {
    "km/h": "km/h", "kmh": "km/h", "км/ч": "km/h", "mph": "mph", "m/s": "m/s", "м/с": "m/s",
    "µg/m³": "ug/m3", "μg/m³": "ug/m3", "µg/m3": "ug/m3", "μg/m3": "ug/m3", "мкг/м³": "ug/m3",
    "km": "km", "км": "km", "m²": "m2", "м²": "m2", "m³": "m3", "м³": "m3",
    "m": "m", "м": "m", "cm": "cm", "см": "cm", "mm": "mm", "мм": "mm",
    "kg": "kg", "кг": "kg", "g": "g", "l": "l", "L": "l", "л": "l",
    "ml": "ml", "mL": "ml", "мл": "ml",
    "MWh": "MWh", "МВт·ч": "MWh", "kWh": "kWh", "kwh": "kWh", "KWh": "kWh", "кВт·ч": "kWh",
    "кВтч": "kWh", "кВт*ч": "kWh", "Wh": "Wh", "Вт·ч": "Wh",
    "kW": "kW", "кВт": "kW", "W": "W", "Вт": "W", "V": "V", "В": "V", "A": "A", "А": "A",
    "hPa": "hPa", "гПа": "hPa", "mbar": "mbar", "мбар": "mbar", "%": "%", "％": "%",
    "ppm": "ppm", "lx": "lx", "лк": "lx", "dB": "dB", "дБ": "dB",
    "min": "min", "мин": "min", "h": "h", "ч": "h", "ct": "ct", "Ct": "ct",
}
_UNIT_ALTS = "|".join(re.escape(a) for a in sorted(_UNIT_ALIASES, key=len, reverse=True))

_CURRENCY_ALIASES = {
    "€": "EUR", "EUR": "EUR", "$": "USD", "US$": "USD", "USD": "USD", "£": "GBP", "GBP": "GBP",
    "¥": "JPY", "₩": "KRW", "₽": "RUB", "руб.": "RUB", "руб": "RUB", "R$": "BRL", "CHF": "CHF",
}
_CURRENCY_HINTS = ("€", "$", "£", "¥", "₩", "₽", "CHF", "EUR", "USD", "GBP", "руб")
_CUR_PRE = r"R\$|US\$|CHF|EUR|USD|GBP|[€$£¥₩₽]"
_CUR_POST = r"руб\.|руб|CHF|EUR|USD|GBP|[€$£¥₩₽]"


def _num(name: str, space_groups: bool) -> str:
    space = "| [0-9]{3}(?![0-9])" if space_groups else ""
    # at most 5 groups (more is over MAX_DIGITS anyway): bounded backtracking per start
    return rf"{_BEFORE}(?P<{name}>[0-9]+(?:[.,'’\u00a0\u202f][0-9]+{space}){{0,5}})"


def _sign(name: str, cjk: bool = False) -> str:
    if cjk:
        return rf"(?P<{name}>(?<![0-9{_LETTER}])[-−+])?"
    return rf"(?P<{name}>(?<![^\s(\[{{:/~≈])[-−+])?"


def _ungroup(part: str, seps: str) -> str | None:
    """Digits of an integer part written with one kind of group separator, else None."""
    used = {c for c in part if not c.isdigit()}
    if not used:
        return part
    if len(used) > 1 or not used <= set(seps):
        return None
    groups = part.split(used.pop())
    if not (1 <= len(groups[0]) <= 3) or groups[0].startswith("0"):
        return None
    if any(len(g) != 3 for g in groups[1:]):
        return None
    return "".join(groups)


@dataclass
class _Budget:
    left: int


# --------------------------------------------------------------------------------------------
class _Lang:
    """English-like defaults; each language overrides its tables and what it says otherwise."""

    n2w = "en"
    decimal_comma = False
    space_groups = False
    cjk = False
    digit_words: tuple[str, ...] = ()
    point = "point"
    minus = "minus"
    plus = "plus"
    and_word = "and"
    or_word = "or"
    at_word = "at"
    number_word = "number"
    hashtag_word = "hashtag"
    range_word = "to"
    per_word = "per"
    money_and = "and"
    romance_fraction = False
    units: dict[str, Noun] = {}
    temperatures: dict[str, Noun] = {}
    currencies: dict[str, tuple[Noun, Noun | None]] = {}
    scales: dict[str, Noun] = {}
    months: tuple[str, ...] = ()
    second: Noun = _n("second", "seconds")
    time_prepositions: tuple[str, ...] = ()
    date_prepositions: tuple[str, ...] = ()
    per_words: tuple[str, ...] = ()
    between: dict[str, str] = {}

    def __init__(self) -> None:
        sg = self.space_groups
        num, sign = _num("n", sg), _sign("s", self.cjk)
        ua = _UNIT_AFTER
        self._number = re.compile(sign + num + _AFTER)
        self._units = re.compile(
            rf"{sign}{num}{_SP}?(?P<u>{_UNIT_ALTS}){ua}"
            rf"(?:/(?:(?P<per>{_UNIT_ALTS}){ua}|(?P<perw>[^\W\d_]+)))?")
        self._temperature = re.compile(
            rf"{sign}{num}{_SP}?(?:°{_SP}?(?P<t>[CF])(?![{_LETTER}])|(?P<sym>℃|℉)|°(?![CF]))")
        scales = "|".join(re.escape(s) for s in sorted(self.scales, key=len, reverse=True))
        scale = rf"(?:{_SP}(?P<scale>{scales})(?![{_LETTER}]))?" if scales else ""
        per = (rf"(?:{_SP}?/{_SP}?(?:(?P<per>{_UNIT_ALTS}){ua}|(?P<perw>[^\W\d_]+)))?")
        self._currency_pre = re.compile(
            rf"(?<![{_LETTER}])(?P<c>{_CUR_PRE}){_SP}?{sign}{num}(?![.,'’]?[0-9]){scale}{per}")
        self._currency_post = re.compile(
            rf"{sign}{num}{scale}{_SP}?(?P<c>{_CUR_POST})(?![{_LETTER}]){per}")
        tilde = "~〜～" if self.cjk else ""
        self._range = re.compile(
            rf"{sign}{num}{_SP}?[-–{tilde}]{_SP}?(?=(?P<b>[0-9]+(?:[.,][0-9]+)?){_AFTER})")
        time = r"(?P<h{i}>[01]?[0-9]|2[0-4]):(?P<m{i}>[0-5][0-9])(?::(?P<sec{i}>[0-5][0-9]))?"
        suffix = rf"(?:{_SP}?(?P<suf{{i}}>{self.time_suffix()}))?" if self.time_suffix() else ""
        one = time.format(i=1) + suffix.format(i=1)
        two = time.format(i=2) + suffix.format(i=2)
        self._time = re.compile(
            rf"(?<![0-9:.,])(?:{one})(?:{_SP}?[-–]{_SP}?(?:{two}))?(?![0-9]|:[0-9])")
        preps = "|".join(self.time_prepositions)
        self._dot_time = re.compile(
            rf"(?i:\b(?P<p>{preps}))\s(?P<h>[01]?[0-9]|2[0-3])\.(?P<m>[0-5][0-9])(?![0-9.,])"
        ) if preps else None
        self._iso = re.compile(
            r"(?<![0-9.\-/])(?P<y>[12][0-9]{3})-(?P<m>[01][0-9])-(?P<d>[0-3][0-9])"
            r"(?![0-9]|-[0-9])")
        self._ymd = re.compile(
            r"(?<![0-9./])(?P<y>[12][0-9]{3})/(?P<m>[01]?[0-9])/(?P<d>[0-3]?[0-9])(?![0-9/])")
        self._dmy = re.compile(
            r"(?<![0-9./,])(?P<a>[0-3]?[0-9])(?P<sep>[./])(?P<b>[0-3]?[0-9])(?P=sep)"
            r"(?P<y>[12][0-9]{3}|[0-9]{2})(?![0-9]|[./][0-9])")
        dpreps = "|".join(self.date_prepositions)
        self._dm = re.compile(
            rf"(?i:\b(?P<p>{dpreps}))\s(?P<a>[0-3]?[0-9])\.(?P<b>[01]?[0-9])\.(?![0-9])"
        ) if dpreps else None
        months = "|".join(sorted(self.months, key=len, reverse=True))
        self._named = [re.compile(p.replace("MONTH", months)) for p in self.named_dates()]
        self._hash = re.compile(r"(?<![^\s(\[])#(?:(?P<n>[0-9]{1,6})(?![0-9])|(?=[^\W\d_]))")
        self._and = re.compile(r"\s*&\s*")
        self._plus = re.compile(r"\s*\+\s*")
        self._at = re.compile(r"\s*@\s*")
        self._slash = re.compile(r"(?<=[^\W\d_])/(?=[^\W\d_])")
        self._ordinal = re.compile(self.ordinal_pattern()) if self.ordinal_pattern() else None
        pers = "|".join(self.per_words)
        self._per_unit = re.compile(
            rf"(?<![{_LETTER}])(?P<p>(?i:{pers})){_SP}(?P<u>{_UNIT_ALTS}){ua}"
        ) if pers else None

    # ---- words --------------------------------------------------------------------------
    def cardinal(self, n: int, gender: str = "m", noun: bool = False) -> str:
        return _n2w(n, self.n2w)

    def digits(self, digits: str) -> str:
        sep = "" if self.cjk else " "
        return sep.join(self.digit_words[int(c)] for c in digits)

    def fraction(self, frac: str) -> str:
        if self.romance_fraction and len(frac) <= 3 and not frac.startswith("0"):
            return self.cardinal(int(frac))
        return self.digits(frac)

    def signed(self, sign: str, words: str) -> str:
        if sign == "-":
            return f"{self.minus} {words}"
        if sign == "+":
            return f"{self.plus} {words}"
        return words

    def number(self, num: Num, gender: str = "m", noun: bool = False) -> str:
        if num.frac:
            words = f"{self.cardinal(num.integer)} {self.point} {self.fraction(num.frac)}"
        else:
            words = self.cardinal(num.integer, gender, noun)
        return self.signed(num.sign, words)

    def plural_index(self, num: Num) -> int:
        return 0 if num.integer == 1 and not num.frac else 1

    def form(self, num: Num, noun: Noun) -> str:
        return noun.forms[min(self.plural_index(num), len(noun.forms) - 1)]

    def quantity(self, num: Num, noun: Noun) -> str:
        words = self.number(num, noun.gender, noun.agrees) if noun.agrees else self.number(num)
        return f"{words} {self.form(num, noun)}"

    def per(self, amount: str, noun: Noun) -> str:
        return f"{amount} {self.per_word} {noun.forms[0]}"

    def scaled(self, amount: str, major: Noun) -> str:
        return f"{amount} {major.forms[-1]}"

    def year(self, y: int) -> str:
        return self.cardinal(y)

    def ordinal(self, n: int, marker: str, prev: str) -> str:
        return _n2w(n, self.n2w, "ordinal")

    def ordinal_pattern(self) -> str:
        return ""

    def time_suffix(self) -> str:
        return ""

    def named_dates(self) -> list[str]:
        return []

    # ---- parsing ------------------------------------------------------------------------
    def parse(self, token: str, sign: str | None = "") -> Num | None:
        t = token.replace("\u00a0", " ").replace("\u202f", " ").replace("’", "'")
        sign = "-" if sign in ("-", "−") else ("+" if sign == "+" else "")
        has_comma, has_point = "," in t, "." in t
        if has_comma and has_point:
            mark = "," if t.rfind(",") > t.rfind(".") else "."
        elif has_comma:
            mark = "," if self.decimal_comma and t.count(",") == 1 else ""
        elif has_point:
            mark = "" if self.decimal_comma and _ungroup(t, ".' ") else "."
            if mark and t.count(".") != 1:
                return None
        else:
            mark = ""
        integer, frac = (t.rsplit(mark, 1) if mark else (t, ""))
        if frac and not frac.isdigit():
            return None
        seps = "".join(c for c in ".,' " if c != mark)
        digits = _ungroup(integer, seps)
        if digits is None or not digits or len(digits) > MAX_DIGITS or len(frac) > MAX_DIGITS:
            return None
        return Num(sign, int(digits), frac)

    # ---- what is said ---------------------------------------------------------------------
    def temperature(self, num: Num, scale: str) -> str:
        return self.quantity(num, self.temperatures[scale])

    def currency(self, num: Num, key: str, scale: str | None) -> str:
        major, minor = self.currencies[key]
        if scale:
            return self.scaled(self.quantity(num, self.scales[scale]), major)
        if len(num.frac) == 2 and minor is not None:
            whole, cents = Num(num.sign, num.integer), int(num.frac)
            if not cents:
                return self.quantity(whole, major)
            cent_words = self.quantity(Num("", cents), minor)
            if num.integer == 0:
                return self.signed(num.sign, cent_words)
            return self.join_money(self.quantity(whole, major), cent_words)
        return self.quantity(Num(num.sign, num.integer, num.frac.rstrip("0")
                                 if num.frac.strip("0") else ""), major)

    def join_money(self, major: str, minor: str) -> str:
        return f"{major} {self.money_and} {minor}" if self.money_and else f"{major} {minor}"

    def time(self, h: int, m: int, s: int | None, suffix: str | None) -> str:
        raise NotImplementedError

    def date(self, d: int, mo: int, y: int | None, prev: str, **kw) -> str:
        raise NotImplementedError

    def dm_order(self, a: int, b: int) -> tuple[int, int]:
        """(day, month) of a numeric date written a/b/y or a.b.y."""
        return a, b

    def special(self, text: str, sub) -> str:
        """Language-specific passes before ordinals and plain numbers."""
        return text

    def early(self, text: str, sub) -> str:
        """Language-specific passes before dates and times."""
        return text

    # ---- the passes -----------------------------------------------------------------------
    def apply(self, text: str, budget: _Budget) -> str:
        def sub(pattern, fn, text, need: str = ""):
            # `need`: characters one of which the pattern cannot match without (a cheap
            # test that skips most passes for most sentences)
            if pattern is None or (need and not any(c in text for c in need)):
                return text

            def repl(m):
                old = m.group(0)
                try:
                    new = fn(m)
                except Exception:
                    return old
                if new is None:
                    return old
                grow = len(new) - len(old)
                if grow > budget.left:
                    return old
                budget.left -= grow
                return new

            return pattern.sub(repl, text)

        if self.cjk:
            text = text.translate(_FULLWIDTH)
        text = sub(self._hash, self._on_hash, text, "#")
        text = self.early(text, sub)
        text = sub(self._iso, lambda m: self._on_numeric_date(
            m, int(m["d"]), int(m["m"]), int(m["y"])), text, "-")
        text = sub(self._ymd, lambda m: self._on_numeric_date(
            m, int(m["d"]), int(m["m"]), int(m["y"])), text, "/")
        text = sub(self._dmy, self._on_dmy, text, "./")
        text = sub(self._dm, self._on_dm, text, ".")
        for pattern in self._named:
            text = sub(pattern, self._on_named_date, text)
        text = sub(self._time, self._on_time, text, ":")
        text = sub(self._dot_time, self._on_dot_time, text, ".")
        text = sub(self._range, self._on_range, text, "-–~〜～")
        if any(c in text for c in _CURRENCY_HINTS):
            text = sub(self._currency_pre, self._on_currency, text)
            text = sub(self._currency_post, self._on_currency, text)
        text = sub(self._temperature, self._on_temperature, text, "°℃℉")
        text = sub(self._units, self._on_unit, text)
        text = sub(self._per_unit, lambda m: (
            f"{m['p']} {self.units[_UNIT_ALIASES[m['u']]].forms[0]}"), text)
        text = sub(self._ordinal, self._on_ordinal, text)
        text = self.special(text, sub)
        text = sub(self._slash, self._on_slash, text, "/")
        text = sub(self._number, self._on_number, text)
        text = sub(self._and, lambda m: self.symbol(self.and_word), text, "&")
        text = sub(self._plus, lambda m: self.symbol(self.plus), text, "+")
        text = sub(self._at, lambda m: self.symbol(self.at_word), text, "@")
        return self.finish(text)

    def _on_slash(self, m):
        after = m.string[m.end():m.end() + len(self.or_word) + 1]
        if after.lower().rstrip(" .,;:!?") == self.or_word.lower():  # "and/or"
            return " "
        return self.symbol(self.or_word)

    def finish(self, text: str) -> str:
        """Language-specific clean-up of the joined result."""
        return text

    def symbol(self, word: str) -> str:
        return word if self.cjk and not self.spaced_cjk else f" {word} "

    spaced_cjk = False

    @staticmethod
    def prev_word(m: re.Match, group: int | str = 0) -> str:
        found = _PREV_WORD.search(m.string, max(0, m.start(group) - 40), m.start(group))
        return found.group(1).lower() if found else ""

    @staticmethod
    def next_word(m: re.Match) -> str:
        found = _NEXT_WORD.match(m.string, m.end())
        return found.group(1) if found else ""

    def _on_hash(self, m):
        if m["n"] is None:
            return f"{self.hashtag_word} "
        return f"{self.number_word} {self.cardinal(int(m['n']))}"

    def _valid_date(self, d: int, mo: int) -> bool:
        return 1 <= d <= 31 and 1 <= mo <= 12

    def _on_numeric_date(self, m, d, mo, y):
        if not self._valid_date(d, mo):
            return None
        return self.date(d, mo, y, self.prev_word(m), numeric=True)

    def _on_dmy(self, m):
        d, mo = self.dm_order(int(m["a"]), int(m["b"]))
        y = int(m["y"])
        if y < 100:
            y += 2000
        return self._on_numeric_date(m, d, mo, y)

    def _on_dm(self, m):
        d, mo = self.dm_order(int(m["a"]), int(m["b"]))
        if not self._valid_date(d, mo):
            return None
        return f"{m['p']} {self.date(d, mo, None, m['p'].lower(), numeric=True)}"

    def _month_index(self, name: str) -> int:
        lowered = name.lower()
        for i, month in enumerate(self.months):
            if month.lower() == lowered:
                return self.month_numbers[i] if self.month_numbers else i + 1
        raise KeyError(name)

    month_numbers: tuple[int, ...] = ()

    def _on_named_date(self, m):
        d, mo = int(m["d"]), self._month_index(m["mon"])
        y = int(m["y"]) if m["y"] else None
        if not self._valid_date(d, mo):
            return None
        groups = m.groupdict()
        return self.date(d, mo, y, self.prev_word(m), named=True, groups=groups)

    def _on_time(self, m):
        first = self._one_time(m, 1)
        if first is None:
            return None
        if m["h2"] is None:
            return first
        second = self._one_time(m, 2)
        if second is None:
            return None
        return self.time_range(first, second)

    def time_range(self, first: str, second: str) -> str:
        return f"{first} {self.range_word} {second}"

    def _one_time(self, m, i):
        h, mi = int(m[f"h{i}"]), int(m[f"m{i}"])
        s = m[f"sec{i}"]
        if h == 24:
            if mi:
                return None
            h = 0
        suffix = m.groupdict().get(f"suf{i}")
        return self.time(h, mi, int(s) if s else None, suffix)

    def _on_dot_time(self, m):
        return f"{m['p']} {self.time(int(m['h']), int(m['m']), None, None)}"

    def _on_range(self, m):
        a = self.parse(m["n"], m["s"])
        b = self.parse(m["b"])
        if a is None or b is None or a.integer > 999 or b.integer > 999:
            return None
        return f"{self.number(a)} {self.between.get(self.prev_word(m), self.range_word)} "

    def _on_currency(self, m):
        num = self.parse(m["n"], m["s"])
        if num is None:
            return None
        key = _CURRENCY_ALIASES[m["c"]]
        words = self.currency(num, self.currency_key(key), m.groupdict().get("scale"))
        return self._with_per(words, m)

    def _with_per(self, words: str, m) -> str:
        if m["per"]:
            return self.per(words, self.units[_UNIT_ALIASES[m["per"]]])
        if m["perw"]:
            return self.per(words, Noun((m["perw"],)))
        return words

    def currency_key(self, key: str) -> str:
        return key

    def _on_temperature(self, m):
        num = self.parse(m["n"], m["s"])
        if num is None:
            return None
        scale = m["t"] or {"℃": "C", "℉": "F"}.get(m["sym"] or "", "")
        return self.temperature(num, scale)

    def _on_unit(self, m):
        num = self.parse(m["n"], m["s"])
        if num is None:
            return None
        noun = self.units[_UNIT_ALIASES[m["u"]]]
        if noun.prefix and m.string[:m.start()].rstrip().endswith(noun.prefix):
            noun = Noun(noun.forms, noun.gender, noun.agrees)
        return self._with_per(self.quantity(num, noun), m)

    def _on_ordinal(self, m):
        n = int(m["n"])
        if len(m["n"]) > MAX_DIGITS:
            return None
        return self.ordinal(n, m["o"], self.prev_word(m))

    def _on_number(self, m):
        num = self.parse(m["n"], m["s"])
        if num is not None:
            return self.plain_number(num, m)
        runs = re.findall(r"[0-9]+", m["n"])
        if any(len(r) > MAX_DIGITS for r in runs):
            return None
        words = re.sub(r"[0-9]+", lambda r: self.cardinal(int(r.group(0))), m["n"])
        return self.signed(self.parse("0", m["s"]).sign, words)

    def plain_number(self, num: Num, m) -> str:
        return self.number(num)


# --------------------------------------------------------------------------------------------
class _English(_Lang):
    digit_words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                   "nine")
    units = {
        "km": _n("kilometer", "kilometers"), "km/h": _n("kilometer per hour",
                                                         "kilometers per hour"),
        "mph": _n("mile per hour", "miles per hour"),
        "m/s": _n("meter per second", "meters per second"),
        "m": _n("meter", "meters"), "cm": _n("centimeter", "centimeters"),
        "mm": _n("millimeter", "millimeters"), "m2": _n("square meter", "square meters"),
        "m3": _n("cubic meter", "cubic meters"),
        "kg": _n("kilogram", "kilograms"), "g": _n("gram", "grams"),
        "l": _n("liter", "liters"), "ml": _n("milliliter", "milliliters"),
        "W": _n("watt", "watts"), "kW": _n("kilowatt", "kilowatts"),
        "Wh": _n("watt hour", "watt hours"), "kWh": _n("kilowatt hour", "kilowatt hours"),
        "MWh": _n("megawatt hour", "megawatt hours"), "V": _n("volt", "volts"),
        "A": _n("ampere", "amperes"), "hPa": _n("hectopascal", "hectopascals"),
        "mbar": _n("millibar", "millibars"), "%": _n("percent", "percent"),
        "ppm": _n("part per million", "parts per million"), "lx": _n("lux", "lux"),
        "dB": _n("decibel", "decibels"),
        "ug/m3": _n("microgram per cubic meter", "micrograms per cubic meter"),
        "min": _n("minute", "minutes"), "h": _n("hour", "hours"),
        "ct": _n("cent", "cents"),
    }
    temperatures = {"C": _n("degree Celsius", "degrees Celsius"),
                    "F": _n("degree Fahrenheit", "degrees Fahrenheit"),
                    "": _n("degree", "degrees")}
    currencies = {
        "EUR": (_n("euro", "euros"), _n("cent", "cents")),
        "USD": (_n("dollar", "dollars"), _n("cent", "cents")),
        "GBP": (_n("pound", "pounds"), _n("penny", "pence")),
        "JPY": (_n("yen", "yen"), None), "CNY": (_n("yuan", "yuan"), None),
        "KRW": (_n("won", "won"), None),
        "RUB": (_n("ruble", "rubles"), _n("kopek", "kopeks")),
        "BRL": (_n("real", "reais"), _n("centavo", "centavos")),
        "CHF": (_n("franc", "francs"), _n("centime", "centimes")),
    }
    scales = {"thousand": _n("thousand", "thousand"), "million": _n("million", "million"),
              "billion": _n("billion", "billion"), "trillion": _n("trillion", "trillion")}
    months = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
    time_prepositions = ("at", "from", "until", "till", "by")
    per_words = ("per",)
    between = {"between": "and"}

    def __init__(self) -> None:
        super().__init__()
        self._ampm = re.compile(
            rf"(?<![0-9:.,])(?P<h>1[0-2]|0?[1-9]){_SP}?(?P<suf>[aApP]\.?{_SP}?[mM]\.?)"
            rf"(?![{_LETTER}])")
        self._year = re.compile(
            r"\b(?P<p>[Ii]n|[Ss]ince|[Bb]y|[Ff]rom|[Uu]ntil|[Tt]ill|[Oo]f|[Yy]ear|[Bb]efore|"
            rf"[Aa]fter)\s(?P<y>1[1-9][0-9]{{2}}|20[0-9]{{2}}){_AFTER}")

    def time_suffix(self) -> str:
        return r"[aApP]\.?[ ]?[mM]\.?(?![A-Za-z])"

    def ordinal_pattern(self) -> str:
        return rf"{_BEFORE}(?P<n>[0-9]{{1,15}})(?P<o>st|nd|rd|th)(?![{_WORDCH}])"

    def named_dates(self) -> list[str]:
        return [
            rf"\b(?P<mon>MONTH)\s(?P<d>[0-3]?[0-9])(?:st|nd|rd|th)?(?![0-9{_LETTER}])"
            r"(?:,?\s(?P<y>[12][0-9]{3})(?![0-9]))?",
            rf"{_BEFORE}(?P<d>[0-3]?[0-9])(?:st|nd|rd|th)?\s(?P<of>of\s)?(?P<mon>MONTH)\b"
            r"(?:,?\s(?P<y>[12][0-9]{3})(?![0-9]))?",
        ]

    def cardinal(self, n, gender="m", noun=False):
        return _n2w(n, "en")

    def year(self, y):
        return _n2w(y, "en", "year") if 1000 <= y <= 2099 else self.cardinal(y)

    def dm_order(self, a, b):
        return (a, b) if a > 12 else (b, a)

    def time(self, h, m, s, suffix):
        ampm = None
        if suffix:
            ampm = "a.m." if suffix[0] in "aA" else "p.m."
        elif h >= 13:
            h, ampm = h - 12, "p.m."
        elif h == 0:
            if m == 0 and not s:
                return "midnight"
            h, ampm = 12, "a.m."
        hour = self.cardinal(h)
        if m == 0:
            words = hour if ampm or s else f"{hour} o'clock"
        elif m < 10:
            words = f"{hour} oh {self.cardinal(m)}"
        else:
            words = f"{hour} {self.cardinal(m)}"
        if s:
            words += f" and {self.quantity(Num('', s), self.second)}"
        return f"{words} {ampm}" if ampm else words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        month, day = self.months[mo - 1], self.ordinal(d, "", prev)
        if groups and groups.get("_first") == "d":
            text = f"{'' if prev == 'the' else 'the '}{day} of {month}"
            return f"{text} {self.year(y)}" if y else text
        text = f"{month} {day}"
        return f"{text}, {self.year(y)}" if y else text

    def _on_named_date(self, m):
        groups = m.groupdict()
        groups["_first"] = "d" if m.start("d") < m.start("mon") else "m"
        d, mo = int(m["d"]), self._month_index(m["mon"])
        if not self._valid_date(d, mo):
            return None
        y = int(m["y"]) if m["y"] else None
        return self.date(d, mo, y, self.prev_word(m), named=True, groups=groups)

    def special(self, text, sub):
        return sub(self._year, lambda m: f"{m['p']} {self.year(int(m['y']))}", text)

    def early(self, text, sub):
        return sub(self._ampm, lambda m: self.time(int(m["h"]), 0, None, m["suf"]), text)

    def finish(self, text):
        return _DOUBLE_DOT.sub(r"\1.m.", text)


# --------------------------------------------------------------------------------------------
class _German(_Lang):
    n2w = "de"
    decimal_comma = True
    digit_words = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht",
                   "neun")
    point = "Komma"
    and_word = "und"
    or_word = "oder"
    number_word = "Nummer"
    hashtag_word = "Hashtag"
    range_word = "bis"
    per_word = "pro"
    money_and = "und"
    second = _n("Sekunde", "Sekunden", g="f")
    units = {
        "km": _n("Kilometer", "Kilometer"),
        "km/h": _n("Kilometer pro Stunde", "Kilometer pro Stunde"),
        "mph": _n("Meile pro Stunde", "Meilen pro Stunde", g="f"),
        "m/s": _n("Meter pro Sekunde", "Meter pro Sekunde"),
        "m": _n("Meter", "Meter"), "cm": _n("Zentimeter", "Zentimeter"),
        "mm": _n("Millimeter", "Millimeter"), "m2": _n("Quadratmeter", "Quadratmeter"),
        "m3": _n("Kubikmeter", "Kubikmeter"),
        "kg": _n("Kilogramm", "Kilogramm", g="n"), "g": _n("Gramm", "Gramm", g="n"),
        "l": _n("Liter", "Liter"), "ml": _n("Milliliter", "Milliliter"),
        "W": _n("Watt", "Watt", g="n"), "kW": _n("Kilowatt", "Kilowatt", g="n"),
        "Wh": _n("Wattstunde", "Wattstunden", g="f"),
        "kWh": _n("Kilowattstunde", "Kilowattstunden", g="f"),
        "MWh": _n("Megawattstunde", "Megawattstunden", g="f"),
        "V": _n("Volt", "Volt", g="n"), "A": _n("Ampere", "Ampere", g="n"),
        "hPa": _n("Hektopascal", "Hektopascal", g="n"),
        "mbar": _n("Millibar", "Millibar", g="n"), "%": _n("Prozent", "Prozent", g="n"),
        "ppm": _n("ppm", "ppm", g="n"), "lx": _n("Lux", "Lux", g="n"),
        "dB": _n("Dezibel", "Dezibel", g="n"),
        "ug/m3": _n("Mikrogramm pro Kubikmeter", "Mikrogramm pro Kubikmeter", g="n"),
        "min": _n("Minute", "Minuten", g="f"), "h": _n("Stunde", "Stunden", g="f"),
        "ct": _n("Cent", "Cent"),
    }
    temperatures = {"C": _n("Grad Celsius", "Grad Celsius", g="n"),
                    "F": _n("Grad Fahrenheit", "Grad Fahrenheit", g="n"),
                    "": _n("Grad", "Grad", g="n")}
    currencies = {
        "EUR": (_n("Euro", "Euro"), _n("Cent", "Cent")),
        "USD": (_n("Dollar", "Dollar"), _n("Cent", "Cent")),
        "GBP": (_n("Pfund", "Pfund", g="n"), _n("Penny", "Pence")),
        "JPY": (_n("Yen", "Yen"), None), "CNY": (_n("Yuan", "Yuan"), None),
        "KRW": (_n("Won", "Won"), None),
        "RUB": (_n("Rubel", "Rubel"), _n("Kopeke", "Kopeken", g="f")),
        "BRL": (_n("Real", "Reais"), _n("Centavo", "Centavos")),
        "CHF": (_n("Franken", "Franken"), _n("Rappen", "Rappen")),
    }
    scales = {"Tsd.": _n("tausend", "tausend"), "Mio.": _n("Million", "Millionen", g="f"),
              "Million": _n("Million", "Millionen", g="f"),
              "Millionen": _n("Million", "Millionen", g="f"),
              "Mrd.": _n("Milliarde", "Milliarden", g="f"),
              "Milliarde": _n("Milliarde", "Milliarden", g="f"),
              "Milliarden": _n("Milliarde", "Milliarden", g="f")}
    months = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember", "Jänner")
    month_numbers = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 1)
    time_prepositions = ("um", "ab", "bis", "gegen", "von")
    per_words = ("pro", "je")
    between = {"zwischen": "und"}
    date_prepositions = ("am", "vom", "zum", "bis", "ab", "seit", "den", "dem", "der", "bis zum")
    _weak = {"der", "die", "das"}
    _dative = {"am", "vom", "zum", "im", "beim", "dem", "den", "des", "ab", "seit", "bis",
               "vor", "nach", "zwischen", "und", "an", "ans", "zur", "ihrem", "seinem", "jeden",
               "jedem"}
    _feminine = {"Tür", "Uhr", "Nacht", "Zeit", "Stadt", "Frau", "Person", "Art", "Welt",
                 "Zahl", "Wahl", "Hand", "Maus", "Tour", "Fahrt"}
    _feminine_endings = ("e", "ung", "heit", "keit", "ion", "tät", "schaft", "ei")

    def __init__(self) -> None:
        super().__init__()
        self._uhr = re.compile(
            rf"(?<![0-9.,:])(?P<h>[01]?[0-9]|2[0-4])(?:\.(?P<m>[0-5][0-9]))?{_SP}?Uhr\b"
            rf"(?:{_SP}(?P<m2>[0-5]?[0-9])(?![0-9.,]))?")
        self._year = re.compile(rf"{_BEFORE}(?P<y>1[1-9][0-9]{{2}}){_AFTER}")
        # "Heute ist der 1." when the sentence splitter has cut off "Dezember"
        self._cut_ordinal = re.compile(rf"{_BEFORE}(?P<n>[0-9]{{1,2}})\.(?=\s*$)")

    def time_suffix(self) -> str:
        return r"Uhr\b|h\b"

    def ordinal_pattern(self) -> str:
        return rf"{_BEFORE}(?P<n>[0-9]{{1,3}})(?P<o>\.)(?=\s[A-ZÄÖÜ][a-zäöüß])"

    def named_dates(self) -> list[str]:
        return [rf"{_BEFORE}(?P<d>[0-3]?[0-9])\.\s?(?P<mon>MONTH)\b"
                r"(?:\s(?P<y>[12][0-9]{3})(?![0-9]))?"]

    def cardinal(self, n, gender="m", noun=False):
        if noun and n == 1:
            return "eine" if gender == "f" else "ein"
        words = _n2w(n, "de")
        # "hundert", "tausenddreizehn": how it is said; "einhundert" is for cheques
        return words[3:] if words.startswith(("einhundert", "eintausend")) else words

    def year(self, y):
        return _n2w(y, "de", "year") if 1100 <= y <= 1999 else self.cardinal(y)

    def plain_number(self, num, m):
        word = self.next_word(m)
        if num.integer == 1 and not num.frac and not num.sign and word[:1].isupper():
            feminine = word in self._feminine or word.endswith(self._feminine_endings)
            return "eine" if feminine else "ein"
        return self.number(num)

    def ending(self, prev: str) -> str:
        if prev in self._weak:
            return "e"
        if prev in self._dative:
            return "en"
        return "er"

    def ordinal(self, n, marker, prev):
        base = _n2w(n, "de", "ordinal")
        stem = base[:-1] if base.endswith("e") else base
        return stem + self.ending(prev)

    def time(self, h, m, s, suffix):
        words = f"{self.cardinal(h, 'f', noun=True) if h == 1 else self.cardinal(h)} Uhr"
        words = words.replace("eine Uhr", "ein Uhr")
        if m:
            words += f" {self.cardinal(m)}"
        if s:
            words += f" und {self.quantity(Num('', s), self.second)}"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        text = f"{self.ordinal(d, '.', prev)} {self.months[mo - 1]}"
        return f"{text} {self.year(y)}" if y else text

    def early(self, text, sub):
        def on_uhr(m):
            minutes = m["m"] or m["m2"]
            return self.time(int(m["h"]) % 24, int(minutes) if minutes else 0, None, None)
        return sub(self._uhr, on_uhr, text)

    _cut_before = {"der", "das", "am", "vom", "zum", "im", "beim", "bis", "ab", "seit"}

    def special(self, text, sub):
        def on_cut(m):
            prev = self.prev_word(m)
            return self.ordinal(int(m["n"]), ".", prev) + "." if prev in self._cut_before else None

        text = sub(self._cut_ordinal, on_cut, text, ".")
        return sub(self._year, lambda m: self.year(int(m["y"])), text)


# --------------------------------------------------------------------------------------------
class _French(_Lang):
    n2w = "fr"
    decimal_comma = True
    space_groups = True
    romance_fraction = True
    digit_words = ("zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit",
                   "neuf")
    point = "virgule"
    minus = "moins"
    and_word = "et"
    or_word = "ou"
    at_word = "arobase"
    number_word = "numéro"
    range_word = "à"
    per_word = "par"
    money_and = "et"
    second = _n("seconde", "secondes", g="f")
    hour = _n("heure", "heures", g="f")
    units = {
        "km": _n("kilomètre", "kilomètres"),
        "km/h": _n("kilomètre par heure", "kilomètres par heure"),
        "mph": _n("mile par heure", "miles par heure"),
        "m/s": _n("mètre par seconde", "mètres par seconde"),
        "m": _n("mètre", "mètres"), "cm": _n("centimètre", "centimètres"),
        "mm": _n("millimètre", "millimètres"), "m2": _n("mètre carré", "mètres carrés"),
        "m3": _n("mètre cube", "mètres cubes"),
        "kg": _n("kilogramme", "kilogrammes"), "g": _n("gramme", "grammes"),
        "l": _n("litre", "litres"), "ml": _n("millilitre", "millilitres"),
        "W": _n("watt", "watts"), "kW": _n("kilowatt", "kilowatts"),
        "Wh": _n("wattheure", "wattheures"), "kWh": _n("kilowattheure", "kilowattheures"),
        "MWh": _n("mégawattheure", "mégawattheures"), "V": _n("volt", "volts"),
        "A": _n("ampère", "ampères"), "hPa": _n("hectopascal", "hectopascals"),
        "mbar": _n("millibar", "millibars"), "%": _n("pour cent", "pour cent"),
        "ppm": _n("ppm", "ppm"), "lx": _n("lux", "lux"), "dB": _n("décibel", "décibels"),
        "ug/m3": _n("microgramme par mètre cube", "microgrammes par mètre cube"),
        "min": _n("minute", "minutes", g="f"), "h": _n("heure", "heures", g="f"),
        "ct": _n("centime", "centimes"),
    }
    temperatures = {"C": _n("degré Celsius", "degrés Celsius"),
                    "F": _n("degré Fahrenheit", "degrés Fahrenheit"),
                    "": _n("degré", "degrés")}
    currencies = {
        "EUR": (_n("euro", "euros"), _n("centime", "centimes")),
        "USD": (_n("dollar", "dollars"), _n("cent", "cents")),
        "GBP": (_n("livre", "livres", g="f"), _n("penny", "pence")),
        "JPY": (_n("yen", "yens"), None), "CNY": (_n("yuan", "yuans"), None),
        "KRW": (_n("won", "wons"), None),
        "RUB": (_n("rouble", "roubles"), _n("kopeck", "kopecks")),
        "BRL": (_n("réal", "réais"), _n("centavo", "centavos")),
        "CHF": (_n("franc", "francs"), _n("centime", "centimes")),
    }
    scales = {"million": _n("million", "millions"), "millions": _n("million", "millions"),
              "milliard": _n("milliard", "milliards"), "milliards": _n("milliard", "milliards")}
    months = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
              "septembre", "octobre", "novembre", "décembre")
    time_prepositions = ()
    per_words = ("par",)
    between = {"entre": "et"}
    _feminine = {
        "heure", "heures", "minute", "minutes", "seconde", "secondes", "fois", "personne",
        "personnes", "semaine", "semaines", "année", "années", "journée", "journées", "nuit",
        "nuits", "pièce", "pièces", "lampe", "lampes", "porte", "portes", "fenêtre",
        "fenêtres", "chambre", "chambres", "place", "places", "page", "pages", "étoile",
        "étoiles", "voiture", "voitures", "lumière", "lumières", "prise", "prises", "alarme",
        "alarmes", "tâche", "tâches", "chose", "choses", "zone", "zones"}

    def __init__(self) -> None:
        super().__init__()
        self._heures = re.compile(
            rf"(?<![0-9.,:])(?P<h>[01]?[0-9]|2[0-4]){_SP}?h(?:{_SP}?(?P<m>[0-5][0-9]))?"
            rf"(?![{_WORDCH}])")

    def ordinal_pattern(self) -> str:
        return rf"{_BEFORE}(?P<n>[0-9]{{1,15}})(?P<o>ère|ème|eme|er|re|nde|nd|e|ᵉʳ|ʳᵉ|ᵉ)" \
               rf"(?![{_WORDCH}])"

    def named_dates(self) -> list[str]:
        return [rf"{_BEFORE}(?P<d>[0-3]?[0-9])(?:er|ᵉʳ)?\s(?P<mon>(?i:MONTH))\b"
                r"(?:\s(?P<y>[12][0-9]{3})(?![0-9]))?"]

    def cardinal(self, n, gender="m", noun=False):
        words = _n2w(n, "fr")
        if gender == "f" and (words == "un" or words.endswith((" un", "-un"))):
            words += "e"
        return words

    def plural_index(self, num):
        return 0 if num.integer < 2 else 1

    def plain_number(self, num, m):
        if not num.frac and self.next_word(m).lower() in self._feminine:
            return self.signed(num.sign, self.cardinal(num.integer, "f"))
        return self.number(num)

    def scaled(self, amount, major):
        noun = major.forms[-1]
        return f"{amount} d'{noun}" if noun[0] in "aeiouéèy" else f"{amount} de {noun}"

    def ordinal(self, n, marker, prev):
        if n == 1:
            return "première" if marker in ("re", "ère", "ʳᵉ") else "premier"
        if n == 2 and marker in ("nd", "nde"):
            return "seconde" if marker == "nde" else "second"
        return _n2w(n, "fr", "ordinal")

    def time(self, h, m, s, suffix):
        words = self.quantity(Num("", h), self.hour)
        if m:
            words += f" {self.cardinal(m, 'f')}"
        if s:
            words += f" et {self.quantity(Num('', s), self.second)}"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        text = f"{'premier' if d == 1 else self.cardinal(d)} {self.months[mo - 1]}"
        return f"{text} {self.cardinal(y)}" if y else text

    def early(self, text, sub):
        return sub(self._heures, lambda m: self.time(
            int(m["h"]) % 24, int(m["m"]) if m["m"] else 0, None, None), text)


# --------------------------------------------------------------------------------------------
class _Spanish(_Lang):
    n2w = "es"
    decimal_comma = True
    romance_fraction = True
    digit_words = ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho",
                   "nueve")
    point = "coma"
    minus = "menos"
    plus = "más"
    and_word = "y"
    or_word = "o"
    at_word = "arroba"
    number_word = "número"
    range_word = "a"
    per_word = "por"
    money_and = "con"
    second = _n("segundo", "segundos")
    units = {
        "km": _n("kilómetro", "kilómetros"),
        "km/h": _n("kilómetro por hora", "kilómetros por hora"),
        "mph": _n("milla por hora", "millas por hora", g="f"),
        "m/s": _n("metro por segundo", "metros por segundo"),
        "m": _n("metro", "metros"), "cm": _n("centímetro", "centímetros"),
        "mm": _n("milímetro", "milímetros"), "m2": _n("metro cuadrado", "metros cuadrados"),
        "m3": _n("metro cúbico", "metros cúbicos"),
        "kg": _n("kilogramo", "kilogramos"), "g": _n("gramo", "gramos"),
        "l": _n("litro", "litros"), "ml": _n("mililitro", "mililitros"),
        "W": _n("vatio", "vatios"), "kW": _n("kilovatio", "kilovatios"),
        "Wh": _n("vatio hora", "vatios hora"), "kWh": _n("kilovatio hora", "kilovatios hora"),
        "MWh": _n("megavatio hora", "megavatios hora"), "V": _n("voltio", "voltios"),
        "A": _n("amperio", "amperios"), "hPa": _n("hectopascal", "hectopascales"),
        "mbar": _n("milibar", "milibares"), "%": _n("por ciento", "por ciento", agrees=False),
        "ppm": _n("ppm", "ppm"), "lx": _n("lux", "lux"), "dB": _n("decibelio", "decibelios"),
        "ug/m3": _n("microgramo por metro cúbico", "microgramos por metro cúbico"),
        "min": _n("minuto", "minutos"), "h": _n("hora", "horas", g="f"),
        "ct": _n("céntimo", "céntimos"),
    }
    temperatures = {"C": _n("grado Celsius", "grados Celsius"),
                    "F": _n("grado Fahrenheit", "grados Fahrenheit"),
                    "": _n("grado", "grados")}
    currencies = {
        "EUR": (_n("euro", "euros"), _n("céntimo", "céntimos")),
        "USD": (_n("dólar", "dólares"), _n("centavo", "centavos")),
        "GBP": (_n("libra", "libras", g="f"), _n("penique", "peniques")),
        "JPY": (_n("yen", "yenes"), None), "CNY": (_n("yuan", "yuanes"), None),
        "KRW": (_n("won", "wones"), None),
        "RUB": (_n("rublo", "rublos"), _n("kopek", "kopeks")),
        "BRL": (_n("real", "reales"), _n("centavo", "centavos")),
        "CHF": (_n("franco", "francos"), _n("céntimo", "céntimos")),
    }
    scales = {"millón": _n("millón", "millones"), "millones": _n("millón", "millones"),
              "mil millones": _n("mil millones", "mil millones")}
    months = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
              "septiembre", "octubre", "noviembre", "diciembre", "setiembre")
    month_numbers = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 9)
    time_prepositions = ("las", "la")
    per_words = ("por",)
    between = {"entre": "y"}
    _stop = {"de", "del", "y", "o", "a", "al", "en", "por", "con", "para", "que", "más",
             "menos", "es", "son", "entre", "sobre", "hasta", "desde", "como", "pero", "sin",
             "se", "lo", "la", "las", "los", "el", "un", "una", "e", "u", "ni", "no", "ya"}
    _masculine_a = {"día", "días", "problema", "problemas", "sistema", "sistemas", "programa",
                    "programas", "tema", "temas", "idioma", "idiomas", "clima", "mapa", "mapas",
                    "planeta", "planetas", "sofá", "sofás"}
    _feminine_endings = ("a", "as", "ción", "ciones", "dad", "dades", "tud", "tudes")

    def plain_number(self, num, m):
        word = self.next_word(m).lower()
        if num.frac or len(word) < 2 or word in self._stop:
            return self.number(num)
        feminine = word not in self._masculine_a and word.endswith(self._feminine_endings)
        return self.signed(num.sign, self.cardinal(num.integer, "f" if feminine else "m",
                                                   noun=True))

    def time_suffix(self) -> str:
        return r"h\b|hs\b"

    def ordinal_pattern(self) -> str:
        return rf"{_BEFORE}(?P<n>[0-9]{{1,15}})(?P<o>\.?º|\.?ª|\.er|\.?ᵉʳ|er)(?![{_WORDCH}])"

    def named_dates(self) -> list[str]:
        return [rf"{_BEFORE}(?P<d>[0-3]?[0-9])(?P<o>\.?º|°)?\s(?i:de)\s(?P<mon>(?i:MONTH))\b"
                r"(?:\s(?i:del?)\s(?P<y>[12][0-9]{3})(?![0-9]))?"]

    def cardinal(self, n, gender="m", noun=False):
        words = _n2w(n, "es")
        if gender == "f":
            words = re.sub(r"uno$", "una", words)
            if n < 1_000_000:
                words = re.sub(r"ientos\b", "ientas", words)
        elif noun:
            if words.endswith("veintiuno"):
                words = words[:-9] + "veintiún"
            elif words.endswith("uno"):
                words = words[:-3] + "un"
        return words

    def scaled(self, amount, major):
        return f"{amount} de {major.forms[-1]}"

    def ordinal(self, n, marker, prev):
        words = _n2w(n, "es", "ordinal")
        if "ª" in marker:
            return re.sub(r"o\b", "a", words)
        if "er" in marker or "ᵉʳ" in marker:
            return re.sub(r"\b(prim|terc)ero\b", r"\1er", words)
        return words

    def _on_ordinal(self, m):
        words = super()._on_ordinal(m)
        word = self.next_word(m).lower()
        if (words and "º" in m["o"] and len(word) > 2 and word not in self._stop
                and not word.endswith(self._feminine_endings)):
            # "el 3º piso": primero, tercero lose their -o before a masculine noun
            words = re.sub(r"\b(prim|terc)ero$", r"\1er", words)
        return words

    def time(self, h, m, s, suffix):
        words = self.cardinal(h, "f")
        if m:
            words += f" y {self.cardinal(m)}"
        if s:
            words += f" y {self.quantity(Num('', s), self.second)}"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        if groups and groups.get("o"):
            day = "primero" if d == 1 else self.cardinal(d)
        else:
            day = self.cardinal(d)
        text = f"{day} de {self.months[mo - 1]}"
        return f"{text} de {self.cardinal(y)}" if y else text


# --------------------------------------------------------------------------------------------
class _Italian(_Lang):
    n2w = "it"
    decimal_comma = True
    romance_fraction = True
    digit_words = ("zero", "uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto",
                   "nove")
    point = "virgola"
    minus = "meno"
    plus = "più"
    and_word = "e"
    or_word = "o"
    at_word = "chiocciola"
    number_word = "numero"
    range_word = "a"
    per_word = "per"
    money_and = "e"
    second = _n("secondo", "secondi")
    units = {
        "km": _n("chilometro", "chilometri"),
        "km/h": _n("chilometro orario", "chilometri orari"),
        "mph": _n("miglio orario", "miglia orarie"),
        "m/s": _n("metro al secondo", "metri al secondo"),
        "m": _n("metro", "metri"), "cm": _n("centimetro", "centimetri"),
        "mm": _n("millimetro", "millimetri"), "m2": _n("metro quadrato", "metri quadrati"),
        "m3": _n("metro cubo", "metri cubi"),
        "kg": _n("chilogrammo", "chilogrammi"), "g": _n("grammo", "grammi"),
        "l": _n("litro", "litri"), "ml": _n("millilitro", "millilitri"),
        "W": _n("watt", "watt"), "kW": _n("kilowatt", "kilowatt"),
        "Wh": _n("wattora", "wattora"), "kWh": _n("kilowattora", "kilowattora"),
        "MWh": _n("megawattora", "megawattora"), "V": _n("volt", "volt"),
        "A": _n("ampere", "ampere"), "hPa": _n("ettopascal", "ettopascal"),
        "mbar": _n("millibar", "millibar"), "%": _n("per cento", "per cento", agrees=False),
        "ppm": _n("ppm", "ppm"), "lx": _n("lux", "lux"), "dB": _n("decibel", "decibel"),
        "ug/m3": _n("microgrammo per metro cubo", "microgrammi per metro cubo"),
        "min": _n("minuto", "minuti"), "h": _n("ora", "ore", g="f"),
        "ct": _n("centesimo", "centesimi"),
    }
    temperatures = {"C": _n("grado Celsius", "gradi Celsius"),
                    "F": _n("grado Fahrenheit", "gradi Fahrenheit"),
                    "": _n("grado", "gradi")}
    currencies = {
        "EUR": (_n("euro", "euro"), _n("centesimo", "centesimi")),
        "USD": (_n("dollaro", "dollari"), _n("centesimo", "centesimi")),
        "GBP": (_n("sterlina", "sterline", g="f"), _n("penny", "pence")),
        "JPY": (_n("yen", "yen"), None), "CNY": (_n("yuan", "yuan"), None),
        "KRW": (_n("won", "won"), None),
        "RUB": (_n("rublo", "rubli"), _n("copeco", "copechi")),
        "BRL": (_n("real", "real"), _n("centavo", "centavos")),
        "CHF": (_n("franco", "franchi"), _n("centesimo", "centesimi")),
    }
    scales = {"milione": _n("milione", "milioni"), "milioni": _n("milione", "milioni"),
              "miliardo": _n("miliardo", "miliardi"), "miliardi": _n("miliardo", "miliardi")}
    months = ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto",
              "settembre", "ottobre", "novembre", "dicembre")
    time_prepositions = ("alle", "dalle", "verso le", "le", "ore", "entro le")
    per_words = ("per", "al")
    between = {"tra": "e", "fra": "e"}
    _stop = {"di", "e", "o", "a", "da", "in", "con", "su", "per", "tra", "fra", "che", "il",
             "lo", "la", "i", "gli", "le", "del", "della", "al", "alla", "è", "sono", "non"}
    _masculine_a = {"problema", "sistema", "programa", "tema", "clima", "pianeta", "giorno"}

    def plain_number(self, num, m):
        word = self.next_word(m).lower()
        if (num.integer != 1 or num.frac or num.sign or len(word) < 2
                or word in self._stop):
            return self.number(num)
        if word.endswith("a") and word not in self._masculine_a:
            return "un'" if word[0] in "aeiou" else "una"
        return "un"

    def finish(self, text):
        return text.replace("un' ", "un'")

    def ordinal_pattern(self) -> str:
        return rf"{_BEFORE}(?P<n>[0-9]{{1,15}})(?P<o>º|ª)(?![{_WORDCH}])"

    def named_dates(self) -> list[str]:
        return [rf"{_BEFORE}(?P<d>[0-3]?[0-9])(?:º|°)?\s(?P<mon>(?i:MONTH))\b"
                r"(?:\s(?P<y>[12][0-9]{3})(?![0-9]))?"]

    def cardinal(self, n, gender="m", noun=False):
        if noun and n == 1:
            return "una" if gender == "f" else "un"
        return _n2w(n, "it")

    def quantity(self, num, noun):
        words = super().quantity(num, noun)
        return re.sub(r"\buna ([aeiou])", r"un'\1", words)

    def scaled(self, amount, major):
        return f"{amount} di {major.forms[-1]}"

    def ordinal(self, n, marker, prev):
        words = _n2w(n, "it", "ordinal")
        return re.sub(r"o\b", "a", words) if marker == "ª" else words

    def time(self, h, m, s, suffix):
        words = "una" if h == 1 else self.cardinal(h)
        if m:
            words += f" e {self.cardinal(m)}"
        if s:
            words += f" e {self.quantity(Num('', s), self.second)}"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        text = f"{'primo' if d == 1 else self.cardinal(d)} {self.months[mo - 1]}"
        return f"{text} {self.cardinal(y)}" if y else text


# --------------------------------------------------------------------------------------------
class _Portuguese(_Lang):
    n2w = "pt_BR"
    decimal_comma = True
    romance_fraction = True
    digit_words = ("zero", "um", "dois", "três", "quatro", "cinco", "seis", "sete", "oito",
                   "nove")
    point = "vírgula"
    minus = "menos"
    plus = "mais"
    and_word = "e"
    or_word = "ou"
    at_word = "arroba"
    number_word = "número"
    range_word = "a"
    per_word = "por"
    money_and = "e"
    second = _n("segundo", "segundos")
    hour = _n("hora", "horas", g="f")
    units = {
        "km": _n("quilômetro", "quilômetros"),
        "km/h": _n("quilômetro por hora", "quilômetros por hora"),
        "mph": _n("milha por hora", "milhas por hora", g="f"),
        "m/s": _n("metro por segundo", "metros por segundo"),
        "m": _n("metro", "metros"), "cm": _n("centímetro", "centímetros"),
        "mm": _n("milímetro", "milímetros"), "m2": _n("metro quadrado", "metros quadrados"),
        "m3": _n("metro cúbico", "metros cúbicos"),
        "kg": _n("quilograma", "quilogramas"), "g": _n("grama", "gramas"),
        "l": _n("litro", "litros"), "ml": _n("mililitro", "mililitros"),
        "W": _n("watt", "watts"), "kW": _n("quilowatt", "quilowatts"),
        "Wh": _n("watt-hora", "watts-hora"), "kWh": _n("quilowatt-hora", "quilowatts-hora"),
        "MWh": _n("megawatt-hora", "megawatts-hora"), "V": _n("volt", "volts"),
        "A": _n("ampere", "amperes"), "hPa": _n("hectopascal", "hectopascais"),
        "mbar": _n("milibar", "milibares"), "%": _n("por cento", "por cento", agrees=False),
        "ppm": _n("ppm", "ppm"), "lx": _n("lux", "lux"), "dB": _n("decibel", "decibéis"),
        "ug/m3": _n("micrograma por metro cúbico", "microgramas por metro cúbico"),
        "min": _n("minuto", "minutos"), "h": _n("hora", "horas", g="f"),
        "ct": _n("centavo", "centavos"),
    }
    temperatures = {"C": _n("grau Celsius", "graus Celsius"),
                    "F": _n("grau Fahrenheit", "graus Fahrenheit"),
                    "": _n("grau", "graus")}
    currencies = {
        "EUR": (_n("euro", "euros"), _n("cêntimo", "cêntimos")),
        "USD": (_n("dólar", "dólares"), _n("centavo", "centavos")),
        "GBP": (_n("libra", "libras", g="f"), _n("pêni", "pence")),
        "JPY": (_n("iene", "ienes"), None), "CNY": (_n("yuan", "yuans"), None),
        "KRW": (_n("won", "wons"), None),
        "RUB": (_n("rublo", "rublos"), _n("copeque", "copeques")),
        "BRL": (_n("real", "reais"), _n("centavo", "centavos")),
        "CHF": (_n("franco", "francos"), _n("cêntimo", "cêntimos")),
    }
    scales = {"milhão": _n("milhão", "milhões"), "milhões": _n("milhão", "milhões"),
              "bilhão": _n("bilhão", "bilhões"), "bilhões": _n("bilhão", "bilhões")}
    months = ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto",
              "setembro", "outubro", "novembro", "dezembro")
    time_prepositions = ("às", "as", "das", "até as", "até às")
    per_words = ("por",)
    between = {"entre": "e"}
    _stop = {"de", "do", "da", "dos", "das", "e", "ou", "a", "o", "em", "no", "na", "por",
             "com", "para", "que", "mais", "menos", "é", "são", "entre", "sobre", "até",
             "desde", "como", "mas", "sem", "os", "as", "um", "uma", "não", "já"}
    _masculine_a = {"dia", "dias", "problema", "problemas", "sistema", "sistemas", "mapa",
                    "mapas", "programa", "programas", "tema", "temas", "clima", "planeta",
                    "planetas", "sofá", "sofás"}
    _feminine_endings = ("a", "as", "ção", "ções", "dade", "dades", "gem", "gens")

    def plain_number(self, num, m):
        word = self.next_word(m).lower()
        if (not num.frac and len(word) >= 2 and word not in self._stop
                and word not in self._masculine_a and word.endswith(self._feminine_endings)):
            return self.signed(num.sign, self.cardinal(num.integer, "f"))
        return self.number(num)

    def time_suffix(self) -> str:
        return r"h\b|hs\b"

    def ordinal_pattern(self) -> str:
        return rf"{_BEFORE}(?P<n>[0-9]{{1,15}})(?P<o>\.?º|\.?ª)(?![{_WORDCH}])"

    def named_dates(self) -> list[str]:
        return [rf"{_BEFORE}(?P<d>[0-3]?[0-9])(?:\.?º|°)?\s(?i:de)\s(?P<mon>(?i:MONTH))\b"
                r"(?:\s(?i:de)\s(?P<y>[12][0-9]{3})(?![0-9]))?"]

    def cardinal(self, n, gender="m", noun=False):
        words = _n2w(n, "pt_BR")
        if gender == "f" and n < 1_000_000:
            words = re.sub(r"\bum\b", "uma", words)
            words = re.sub(r"\bdois\b", "duas", words)
            words = re.sub(r"entos\b", "entas", words)
        return words

    def plural_index(self, num):
        return 0 if num.integer == 1 else 1

    def scaled(self, amount, major):
        return f"{amount} de {major.forms[-1]}"

    def ordinal(self, n, marker, prev):
        words = _n2w(n, "pt_BR", "ordinal")
        return re.sub(r"o\b", "a", words) if "ª" in marker else words

    def time(self, h, m, s, suffix):
        if m:
            words = f"{self.cardinal(h, 'f')} e {self.cardinal(m)}"
        else:
            words = self.quantity(Num("", h), self.hour)
        if s:
            words += f" e {self.quantity(Num('', s), self.second)}"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        text = f"{'primeiro' if d == 1 else self.cardinal(d)} de {self.months[mo - 1]}"
        return f"{text} de {self.cardinal(y)}" if y else text


# --------------------------------------------------------------------------------------------
class _Russian(_Lang):
    n2w = "ru"
    decimal_comma = True
    space_groups = True
    digit_words = ("ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь",
                   "девять")
    point = "запятая"
    minus = "минус"
    plus = "плюс"
    and_word = "и"
    or_word = "или"
    at_word = "собака"
    number_word = "номер"
    hashtag_word = "хештег"
    range_word = "до"
    per_word = "за"
    money_and = ""
    second = _n("секунда", "секунды", "секунд", g="f")
    hour = _n("час", "часа", "часов")
    units = {
        "km": _n("километр", "километра", "километров"),
        "km/h": _n("километр в час", "километра в час", "километров в час"),
        "mph": _n("миля в час", "мили в час", "миль в час", g="f"),
        "m/s": _n("метр в секунду", "метра в секунду", "метров в секунду"),
        "m": _n("метр", "метра", "метров"), "cm": _n("сантиметр", "сантиметра", "сантиметров"),
        "mm": _n("миллиметр", "миллиметра", "миллиметров"),
        "m2": _n("квадратный метр", "квадратных метра", "квадратных метров",
                 "квадратного метра"),
        "m3": _n("кубический метр", "кубических метра", "кубических метров",
                 "кубического метра"),
        "kg": _n("килограмм", "килограмма", "килограммов"),
        "g": _n("грамм", "грамма", "граммов"), "l": _n("литр", "литра", "литров"),
        "ml": _n("миллилитр", "миллилитра", "миллилитров"),
        "W": _n("ватт", "ватта", "ватт"), "kW": _n("киловатт", "киловатта", "киловатт"),
        "Wh": _n("ватт-час", "ватт-часа", "ватт-часов"),
        "kWh": _n("киловатт-час", "киловатт-часа", "киловатт-часов"),
        "MWh": _n("мегаватт-час", "мегаватт-часа", "мегаватт-часов"),
        "V": _n("вольт", "вольта", "вольт"), "A": _n("ампер", "ампера", "ампер"),
        "hPa": _n("гектопаскаль", "гектопаскаля", "гектопаскалей"),
        "mbar": _n("миллибар", "миллибара", "миллибар"),
        "%": _n("процент", "процента", "процентов"), "ppm": _n("ppm", "ppm", "ppm"),
        "lx": _n("люкс", "люкса", "люкс"), "dB": _n("децибел", "децибела", "децибел"),
        "ug/m3": _n("микрограмм на кубический метр", "микрограмма на кубический метр",
                    "микрограммов на кубический метр"),
        "min": _n("минута", "минуты", "минут", g="f"), "h": _n("час", "часа", "часов"),
        "ct": _n("цент", "цента", "центов"),
    }
    temperatures = {"C": _n("градус Цельсия", "градуса Цельсия", "градусов Цельсия"),
                    "F": _n("градус по Фаренгейту", "градуса по Фаренгейту",
                            "градусов по Фаренгейту"),
                    "": _n("градус", "градуса", "градусов")}
    currencies = {
        "EUR": (_n("евро", "евро", "евро"), _n("цент", "цента", "центов")),
        "USD": (_n("доллар", "доллара", "долларов"), _n("цент", "цента", "центов")),
        "GBP": (_n("фунт", "фунта", "фунтов"), _n("пенс", "пенса", "пенсов")),
        "JPY": (_n("иена", "иены", "иен", g="f"), None),
        "CNY": (_n("юань", "юаня", "юаней"), None),
        "KRW": (_n("вона", "воны", "вон", g="f"), None),
        "RUB": (_n("рубль", "рубля", "рублей"), _n("копейка", "копейки", "копеек", g="f")),
        "BRL": (_n("реал", "реала", "реалов"), _n("сентаво", "сентаво", "сентаво", g="n")),
        "CHF": (_n("франк", "франка", "франков"), _n("сантим", "сантима", "сантимов")),
    }
    scales = {"тыс.": _n("тысяча", "тысячи", "тысяч", g="f"),
              "млн": _n("миллион", "миллиона", "миллионов"),
              "млрд": _n("миллиард", "миллиарда", "миллиардов"),
              "миллион": _n("миллион", "миллиона", "миллионов"),
              "миллиона": _n("миллион", "миллиона", "миллионов"),
              "миллионов": _n("миллион", "миллиона", "миллионов")}
    months = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
              "сентября", "октября", "ноября", "декабря")
    time_prepositions = ("в", "с", "до", "к", "около")
    date_prepositions = ("с", "до", "по", "на", "к")
    per_words = ("за",)
    between = {"между": "и"}
    _nominative = {"", "сегодня", "завтра", "вчера", "послезавтра", "позавчера", "это", "был",
                   "была", "было", "будет", "наступило", "наступит"}
    _genitive = {"с", "со", "до", "от", "после", "около", "из", "начиная", "кроме"}
    _dative = {"к", "ко", "по"}
    _ordinal_forms = {
        "й": ("m", "nominative"), "ый": ("m", "nominative"), "ий": ("m", "nominative"),
        "ой": ("m", "nominative"), "я": ("f", "nominative"), "ая": ("f", "nominative"),
        "е": ("n", "nominative"), "ое": ("n", "nominative"), "го": ("m", "genitive"),
        "ого": ("m", "genitive"), "его": ("m", "genitive"), "му": ("m", "dative"),
        "ому": ("m", "dative"), "м": ("m", "prepositional"), "ом": ("m", "prepositional"),
        "ю": ("f", "accusative"), "ую": ("f", "accusative"),
    }

    def __init__(self) -> None:
        super().__init__()
        self._year = re.compile(
            rf"{_BEFORE}(?P<y>[12][0-9]{{3}}){_SP}?(?P<g>года|году|год|г\.)(?![{_LETTER}])")

    def ordinal_pattern(self) -> str:
        ends = "|".join(sorted(self._ordinal_forms, key=len, reverse=True))
        return rf"{_BEFORE}(?P<n>[0-9]{{1,15}})-(?P<o>{ends})(?![{_WORDCH}])"

    def named_dates(self) -> list[str]:
        return [rf"{_BEFORE}(?P<d>[0-3]?[0-9])\s(?P<mon>(?i:MONTH))\b"
                rf"(?:\s(?P<y>[12][0-9]{{3}})(?:{_SP}?(?P<g>года|г\.))?(?![0-9]))?"]

    def cardinal(self, n, gender="m", noun=False):
        return _n2w(n, "ru", gender=gender) if gender != "m" else _n2w(n, "ru")

    def number(self, num, gender="m", noun=False):
        if num.frac and len(num.frac) <= 6:
            words = _n2w(f"{num.integer}.{num.frac}", "ru")
        elif num.frac:
            words = f"{self.cardinal(num.integer)} {self.point} {self.digits(num.frac)}"
        else:
            words = self.cardinal(num.integer, gender)
        return self.signed(num.sign, words)

    def plural_index(self, num):
        if num.frac:
            return 3
        n = num.integer
        if n % 10 == 1 and n % 100 != 11:
            return 0
        if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            return 1
        return 2

    def form(self, num, noun):
        index = self.plural_index(num)
        if index == 3 and len(noun.forms) < 4:
            index = 1
        return noun.forms[index]

    def scaled(self, amount, major):
        return f"{amount} {major.forms[2]}"

    def plain_number(self, num, m):
        n, word = num.integer, self.next_word(m).lower()
        gender = "m"
        if not num.frac and len(word) >= 2:
            if n % 10 == 1 and n % 100 != 11:
                gender = "f" if word.endswith(("а", "я")) else (
                    "n" if word.endswith(("о", "е")) else "m")
            elif n % 10 == 2 and n % 100 != 12 and word.endswith(("ы", "и")):
                gender = "f"
        return self.number(num, gender)

    def ordinal(self, n, marker, prev):
        gender, case = self._ordinal_forms[marker]
        return _n2w(n, "ru", "ordinal", gender=gender, case=case)

    def time(self, h, m, s, suffix):
        if m:
            words = f"{self.cardinal(h)} {'ноль ' if m < 10 else ''}{self.cardinal(m, 'f')}"
        else:
            words = self.quantity(Num("", h), self.hour)
        if s:
            words += f" и {self.quantity(Num('', s), self.second)}"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        # the date a thing happens on is genitive ("придёт второго декабря"), the date it
        # is nominative ("сегодня первое декабря")
        case = ("dative" if prev in self._dative else
                "nominative" if prev in self._nominative else "genitive")
        text = f"{_n2w(d, 'ru', 'ordinal', gender='n', case=case)} {self.months[mo - 1]}"
        if y:
            text += f" {_n2w(y, 'ru', 'ordinal', case='genitive')} года"
        return text

    def special(self, text, sub):
        def on_year(m):
            y, g = int(m["y"]), m["g"]
            if g == "г.":
                g = "году" if self.prev_word(m) in ("в", "во") else "год"
            case = {"года": "genitive", "году": "prepositional", "год": "nominative"}[g]
            return f"{_n2w(y, 'ru', 'ordinal', case=case)} {g}"
        return sub(self._year, on_year, text)


# --------------------------------------------------------------------------------------------
class _CJK(_Lang):
    cjk = True
    digit_words = ("零", "一", "二", "三", "四", "五", "六", "七", "八", "九")
    point = "点"
    range_word = "到"

    def number(self, num, gender="m", noun=False):
        words = self.cardinal(num.integer)
        if num.frac:
            words += self.point + self.digits(num.frac)
        return self.signed(num.sign, words)

    def signed(self, sign, words):
        if sign == "-":
            return self.minus + words
        if sign == "+":
            return self.plus + words
        return words

    def quantity(self, num, noun):
        return f"{noun.prefix}{self.number(num)}{noun.forms[0]}"

    def per(self, amount, noun):
        return f"{noun.forms[0]}{self.per_word}{amount}"

    def time_range(self, first, second):
        return f"{first}{self.range_word}{second}"

    def _on_range(self, m):
        a = self.parse(m["n"], m["s"])
        b = self.parse(m["b"])
        if a is None or b is None or a.integer > 999 or b.integer > 999:
            return None
        return f"{self.number(a)}{self.range_word}"

    def _on_hash(self, m):
        if m["n"] is None:
            return self.hashtag_word
        return f"{self.cardinal(int(m['n']))}{self.number_word}"


class _Japanese(_CJK):
    n2w = "ja"
    minus = "マイナス"
    plus = "プラス"
    and_word = "アンド"
    or_word = "または"
    at_word = "アット"
    number_word = "番"
    hashtag_word = "ハッシュタグ"
    range_word = "から"
    per_word = "あたり"
    units = {
        "km": _n("キロメートル"), "km/h": _n("キロメートル", prefix="時速"),
        "mph": _n("マイル", prefix="時速"), "m/s": _n("メートル", prefix="秒速"),
        "m": _n("メートル"), "cm": _n("センチメートル"), "mm": _n("ミリメートル"),
        "m2": _n("平方メートル"), "m3": _n("立方メートル"), "kg": _n("キログラム"),
        "g": _n("グラム"), "l": _n("リットル"), "ml": _n("ミリリットル"), "W": _n("ワット"),
        "kW": _n("キロワット"), "Wh": _n("ワット時"), "kWh": _n("キロワット時"),
        "MWh": _n("メガワット時"), "V": _n("ボルト"), "A": _n("アンペア"),
        "hPa": _n("ヘクトパスカル"), "mbar": _n("ミリバール"), "%": _n("パーセント"),
        "ppm": _n("ピーピーエム"), "lx": _n("ルクス"), "dB": _n("デシベル"),
        "ug/m3": _n("マイクログラム毎立方メートル"), "min": _n("分"), "h": _n("時間"),
        "ct": _n("セント"),
    }
    temperatures = {"C": _n("度"), "F": _n("度", prefix="華氏"), "": _n("度")}
    currencies = {
        "EUR": (_n("ユーロ"), _n("セント")), "USD": (_n("ドル"), _n("セント")),
        "GBP": (_n("ポンド"), _n("ペンス")), "JPY": (_n("円"), None), "CNY": (_n("元"), None),
        "KRW": (_n("ウォン"), None), "RUB": (_n("ルーブル"), _n("コペイカ")),
        "BRL": (_n("レアル"), _n("センターボ")), "CHF": (_n("スイスフラン"), _n("サンチーム")),
    }
    money_and = ""

    def cardinal(self, n, gender="m", noun=False):
        return _n2w(n, "ja")

    def per(self, amount, noun):
        return f"{noun.forms[0]}あたり{amount}"

    def join_money(self, major, minor):
        return major + minor

    def time(self, h, m, s, suffix):
        words = f"{self.cardinal(h)}時"
        if m:
            words += f"{self.cardinal(m)}分"
        if s:
            words += f"{self.cardinal(s)}秒"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        text = f"{self.cardinal(mo)}月{self.cardinal(d)}日"
        return f"{self.cardinal(y)}年{text}" if y else text


class _Chinese(_CJK):
    n2w = "zh"
    minus = "负"
    plus = "正"
    and_word = "和"
    or_word = "或"
    at_word = "艾特"
    number_word = "号"
    hashtag_word = "话题"
    per_word = "每"
    units = {
        "km": _n("公里"), "km/h": _n("公里每小时"), "mph": _n("英里每小时"),
        "m/s": _n("米每秒"), "m": _n("米"), "cm": _n("厘米"), "mm": _n("毫米"),
        "m2": _n("平方米"), "m3": _n("立方米"), "kg": _n("公斤"), "g": _n("克"),
        "l": _n("升"), "ml": _n("毫升"), "W": _n("瓦"), "kW": _n("千瓦"), "Wh": _n("瓦时"),
        "kWh": _n("千瓦时"), "MWh": _n("兆瓦时"), "V": _n("伏"), "A": _n("安"),
        "hPa": _n("百帕"), "mbar": _n("毫巴"), "%": _n("", prefix="百分之"),
        "ppm": _n("", prefix="百万分之"), "lx": _n("勒克斯"), "dB": _n("分贝"),
        "ug/m3": _n("微克每立方米"), "min": _n("分钟"), "h": _n("小时"),
        "ct": _n("分"),
    }
    _liang_units = {"公里", "米", "厘米", "毫米", "公斤", "克", "升", "毫升", "小时", "分钟"}
    temperatures = {"C": _n("摄氏度"), "F": _n("华氏度"), "": _n("度")}
    currencies = {
        "EUR": (_n("欧元"), None), "USD": (_n("美元"), None), "GBP": (_n("英镑"), None),
        "JPY": (_n("日元"), None), "CNY": (_n("元"), None), "KRW": (_n("韩元"), None),
        "RUB": (_n("卢布"), None), "BRL": (_n("雷亚尔"), None), "CHF": (_n("瑞士法郎"), None),
    }
    _measure = ("个|次|种|位|只|台|辆|件|张|本|天|周|条|岁|年|倍|小时|分钟|杯|瓶|家|名|句|层|"
                "间|把|双|对")

    def __init__(self) -> None:
        super().__init__()
        self._year_digits = re.compile(rf"{_BEFORE}(?P<y>[0-9]{{4}})(?=\s?年)")
        self._liang = re.compile(rf"{_BEFORE}2(?=\s?(?:{self._measure}))")

    def cardinal(self, n, gender="m", noun=False):
        return _cn(n)

    def quantity(self, num, noun):
        if num == Num("", 2) and noun.forms[0] in self._liang_units:
            return f"两{noun.forms[0]}"
        return super().quantity(num, noun)

    def currency_key(self, key):
        return "CNY" if key == "JPY" else key

    def per(self, amount, noun):
        return f"每{noun.forms[0]}{amount}"

    def temperature(self, num, scale):
        noun = self.temperatures[scale]
        if num.sign == "-":
            return f"零下{self.number(Num('', num.integer, num.frac))}{noun.forms[0]}"
        if num.sign == "+":
            return f"零上{self.number(Num('', num.integer, num.frac))}{noun.forms[0]}"
        return self.quantity(num, noun)

    def time(self, h, m, s, suffix):
        words = f"{'两' if h == 2 else self.cardinal(h)}点"
        if m:
            words += f"{'零' if m < 10 else ''}{self.cardinal(m)}分"
        if s:
            words += f"{self.cardinal(s)}秒"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        text = f"{self.cardinal(mo)}月{self.cardinal(d)}日"
        return f"{self.digits(str(y))}年{text}" if y else text

    def special(self, text, sub):
        text = sub(self._year_digits, lambda m: self.digits(m["y"]), text)
        return sub(self._liang, lambda m: "两", text)


class _Korean(_CJK):
    n2w = "ko"
    spaced_cjk = True
    digit_words = ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")
    point = "점"
    minus = "마이너스"
    plus = "플러스"
    and_word = "앤드"
    or_word = "또는"
    at_word = "앳"
    number_word = "번"
    hashtag_word = "해시태그"
    range_word = "에서"
    per_word = "당"
    _native_units = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
    _native_tens = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")
    _months = ("일월", "이월", "삼월", "사월", "오월", "유월", "칠월", "팔월", "구월", "시월",
               "십일월", "십이월")
    _counters = ("번째", "시간", "개", "명", "살", "마리", "잔", "권", "대", "시", "가지", "그루",
                 "병", "장", "켤레", "송이")
    units = {
        "km": _n("킬로미터"), "km/h": _n("킬로미터", prefix="시속"),
        "mph": _n("마일", prefix="시속"), "m/s": _n("미터", prefix="초속"), "m": _n("미터"),
        "cm": _n("센티미터"), "mm": _n("밀리미터"), "m2": _n("제곱미터"), "m3": _n("세제곱미터"),
        "kg": _n("킬로그램"), "g": _n("그램"), "l": _n("리터"), "ml": _n("밀리리터"),
        "W": _n("와트"), "kW": _n("킬로와트"), "Wh": _n("와트시"), "kWh": _n("킬로와트시"),
        "MWh": _n("메가와트시"), "V": _n("볼트"), "A": _n("암페어"), "hPa": _n("헥토파스칼"),
        "mbar": _n("밀리바"), "%": _n("퍼센트"), "ppm": _n("피피엠"), "lx": _n("럭스"),
        "dB": _n("데시벨"), "ug/m3": _n("마이크로그램 퍼 세제곱미터"), "min": _n("분"),
        "h": _n("시간"), "ct": _n("센트"),
    }
    temperatures = {"C": _n("도"), "F": _n("도", prefix="화씨"), "": _n("도")}
    currencies = {
        "EUR": (_n("유로"), _n("센트")), "USD": (_n("달러"), _n("센트")),
        "GBP": (_n("파운드"), _n("펜스")), "JPY": (_n("엔"), None), "CNY": (_n("위안"), None),
        "KRW": (_n("원"), None), "RUB": (_n("루블"), _n("코페이카")),
        "BRL": (_n("헤알"), _n("센타보")), "CHF": (_n("스위스 프랑"), _n("상팀")),
    }
    money_and = ""

    def __init__(self) -> None:
        super().__init__()
        counters = "|".join(self._counters)
        self._counter = re.compile(rf"{_BEFORE}(?P<n>[0-9]{{1,2}})\s?(?P<c>{counters})")
        self._month = re.compile(rf"{_BEFORE}(?P<n>[0-9]{{1,2}})\s?월")

    def cardinal(self, n, gender="m", noun=False):
        return _n2w(n, "ko")

    def native(self, n: int) -> str:
        tens, units = divmod(n, 10)
        if n == 20:
            return "스무"
        return self._native_tens[tens] + self._native_units[units]

    def number(self, num, gender="m", noun=False):
        words = self.cardinal(num.integer)
        if num.frac:
            words += f" {self.point} {self.digits(num.frac)}"
        return self.signed(num.sign, words)

    def signed(self, sign, words):
        if sign == "-":
            return f"{self.minus} {words}"
        if sign == "+":
            return f"{self.plus} {words}"
        return words

    def quantity(self, num, noun):
        if noun.forms[0] == "시간" and not num.frac and 1 <= num.integer <= 99:
            return self.signed(num.sign, f"{self.native(num.integer)} 시간")
        return " ".join(p for p in (noun.prefix, self.number(num), noun.forms[0]) if p)

    def per(self, amount, noun):
        return f"{noun.forms[0]}당 {amount}"

    def time_range(self, first, second):
        return f"{first}에서 {second}"

    def _on_range(self, m):
        words = super()._on_range(m)
        return None if words is None else words + " "

    def _on_hash(self, m):
        if m["n"] is None:
            return f"{self.hashtag_word} "
        return f"{self.cardinal(int(m['n']))} {self.number_word}"

    def temperature(self, num, scale):
        noun = self.temperatures[scale]
        if num.sign:
            above = "영하" if num.sign == "-" else "영상"
            return " ".join(p for p in (noun.prefix, above,
                                        self.number(Num("", num.integer, num.frac)),
                                        noun.forms[0]) if p)
        return self.quantity(num, noun)

    def join_money(self, major, minor):
        return f"{major} {minor}"

    def time(self, h, m, s, suffix):
        if h > 12:
            hour = f"오후 {self.native(h - 12)}"
        elif h == 0:
            hour = "영"
        else:
            hour = self.native(h)
        words = f"{hour} 시"
        if m:
            words += f" {self.cardinal(m)} 분"
        if s:
            words += f" {self.cardinal(s)} 초"
        return words

    def date(self, d, mo, y, prev, named=False, numeric=False, groups=None):
        text = f"{self._months[mo - 1]} {self.cardinal(d)} 일"
        return f"{self.cardinal(y)} 년 {text}" if y else text

    def special(self, text, sub):
        def on_counter(m):
            n, counter = int(m["n"]), m["c"]
            if n == 0:
                return None
            if counter == "번째":
                return f"{'첫' if n == 1 else self.native(n)} 번째"
            return f"{self.native(n)} {counter}"

        def on_month(m):
            n = int(m["n"])
            return self._months[n - 1] if 1 <= n <= 12 else None

        text = sub(self._counter, on_counter, text)
        return sub(self._month, on_month, text)


# --------------------------------------------------------------------------------------------
_CLASSES = {
    "english": _English, "german": _German, "french": _French, "spanish": _Spanish,
    "italian": _Italian, "portuguese": _Portuguese, "russian": _Russian,
    "japanese": _Japanese, "chinese": _Chinese, "korean": _Korean,
}


@cache
def _language(name: str) -> _Lang:
    return _CLASSES[name]()


def supported_languages() -> list[str]:
    """The model language names `normalize` spells numbers for."""
    return list(_CLASSES)


def prepare(languages=None) -> None:
    """Import the number libraries and compile the patterns of `languages` (model language
    names; default all ten) now, e.g. while the model loads, instead of on the first sentence
    (about 0.4 s for all ten here: the imports and some 30 patterns per language)."""
    for name in languages if languages is not None else _CLASSES:
        if name in _CLASSES:
            normalize("1 2,5 1.5 %", name)


def normalize(text: str, language: str) -> str:
    """`text` with numbers, units, times, dates, currencies and symbols spelled out as said
    in `language` (a model language name); unchanged for "auto", an unknown language, text
    longer than MAX_INPUT_CHARS or text without digits or symbols.  Never raises."""
    try:
        if (not isinstance(text, str) or language not in _CLASSES
                or len(text) > MAX_INPUT_CHARS or not _TRIGGER.search(text)):
            return text
        budget = _Budget(GROWTH * len(text) + EXTRA)
        result = _language(language).apply(text, budget)
        result = _SPACES.sub(" ", result)
        if text == text.strip():
            result = result.strip()
        return result
    except Exception:
        return text
