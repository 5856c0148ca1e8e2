"""`pii`: personal-data scrubbing with validated detectors.

Each detector is a regular expression that proposes candidates and a validator that must accept them: a
Luhn check and issuer prefix for payment cards, mod-97 and the country's length for IBANs, the check
character and birth date for mainland-China resident IDs, the issued ranges for US SSNs, `ipaddress` for IP
addresses, shape rules and the country's numbering plan for phone numbers. A number that fails its check is
left alone.

Detectors run in priority order (secrets first, phone numbers last) and a later one never claims text an
earlier one took, so a card number is not also reported as a phone number. Cheap triggers (an `@`, a digit,
a colon) skip detectors that cannot match, which is most of them on most documents.

Why our own code rather than Presidio: Presidio's analyzer runs the same kind of regex recognizers through a
spaCy pipeline and per-recognizer context scoring, about ten times slower on web text, and misses non-US
phone formats and several card issuers (see benchmarks/bench_pii.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path

import phonenumbers
from datatrove.data import Document
from phonenumbers.re_util import re_compile

from corpus.base import CorpusStep
from corpus.config import PHONE_REGIONS, PHONE_REGIONS_HAN, PII_ENTITIES, PiiConfig


@dataclass(frozen=True)
class PiiSpan:
    """One detected item: character offsets (end exclusive) and its entity type."""

    start: int
    end: int
    entity: str


# --------------------------------------------------------------------------- validators
def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of payment-card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# issuer prefixes (IIN ranges) of the card networks in use, with the lengths each issues
_CARD_RANGES = (
    ("4", (13, 16, 19)),  # Visa
    ("51-55", (16,)), ("2221-2720", (16,)),  # Mastercard
    ("34", (15,)), ("37", (15,)),  # American Express
    ("6011", (16, 19)), ("644-649", (16, 19)), ("65", (16, 19)), ("622126-622925", (16, 19)),  # Discover
    ("35", (16, 17, 18, 19)), ("2131", (15,)), ("1800", (15,)),  # JCB: 3528-3589 in use, the rest of 35 kept for it
    ("300-305", (14, 16, 19)), ("36", (14, 16, 19)), ("38-39", (14, 16, 19)),  # Diners Club
    ("50", tuple(range(12, 20))), ("56-69", tuple(range(12, 20))),  # Maestro
    ("62", (16, 17, 18, 19)),  # UnionPay
    ("2200-2204", (16, 17, 18, 19)),  # Mir
)


def _card_issued(digits: str) -> bool:
    for prefixes, lengths in _CARD_RANGES:
        lo, _, hi = prefixes.partition("-")
        head = int(digits[: len(lo)])
        if int(lo) <= head <= int(hi or lo) and len(digits) in lengths:
            return True
    return False


def card_valid(digits: str) -> bool:
    """A payment-card number: 12-19 digits, a known issuer prefix and length, and the Luhn check."""
    return 12 <= len(digits) <= 19 and _card_issued(digits) and luhn_valid(digits)


_IBAN_LENGTHS = dict(  # noqa: C408 - keyword form keeps the 89 country codes of SWIFT's IBAN registry readable
    AD=24, AE=23, AL=28, AT=20, AZ=28, BA=20, BE=16, BG=22, BH=22, BI=27, BR=29, BY=28, CH=21, CR=22, CY=28,
    CZ=24, DE=22, DJ=27, DK=18, DO=28, EE=20, EG=29, ES=24, FI=18, FK=18, FO=18, FR=27, GB=22, GE=22, GI=23,
    GL=18, GR=27, GT=28, HN=28, HR=21, HU=28, IE=22, IL=23, IQ=23, IS=26, IT=27, JO=30, KW=30, KZ=20, LB=28,
    LC=32, LI=21, LT=20, LU=20, LV=21, LY=25, MC=27, MD=24, ME=22, MK=19, MN=20, MR=27, MT=31, MU=30, NI=28,
    NL=18, NO=15, OM=23, PK=24, PL=28, PS=29, PT=25, QA=29, RO=24, RS=22, RU=33, SA=24, SC=31, SD=18, SE=24,
    SI=19, SK=24, SM=27, SO=23, ST=25, SV=28, TL=23, TN=24, TR=26, UA=29, VA=22, VG=24, XK=20, YE=30,
)


def iban_valid(iban: str) -> bool:
    """An IBAN: the country's length and the ISO 13616 mod-97 check (spaces ignored, any case)."""
    s = iban.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_valid(value: str) -> bool:
    """A mainland-China resident ID (GB 11643-1999): region, a real birth date, and the mod-11 check character."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    year, month, day = int(value[6:10]), int(value[10:12]), int(value[12:14])
    days = (31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= days[month - 1]):
        return False
    check = "10X98765432"[sum(int(c) * w for c, w in zip(value, _CN_ID_WEIGHTS)) % 11]
    return value[17].upper() == check


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """A US SSN in an issued range: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def ip_reportable(value: str, private: bool) -> bool:
    """A valid IPv4/IPv6 address; unless `private`, only a globally routable one (not private, loopback,
    link-local, multicast, reserved or unspecified). Four rising single digits (1.4.5.8) are a list of items
    or a version; 8.8.4.4 stays an address."""
    if len(value) == 7 and value[::2].isdigit() and list(value[::2]) == sorted(set(value[::2])):
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return private or address.is_global


# --------------------------------------------------------------------------- phone numbers
_DATE_LIKE = re.compile(r"(?:19|20)\d\d[-.](?:0?[1-9]|1[0-2])[-.](?:0?[1-9]|[12]\d|3[01])(?!\d)"
                        r"|(?:0?[1-9]|[12]\d|3[01])[-.](?:0?[1-9]|[12]\d|3[01])[-.](?:19|20)\d\d(?!\d)"
                        r"|\d\d([-./])\d\d\1(?:1[5-9]|20)\d\d(?!\d)")  # 03-32-2011: a date's shape, valid or not
_SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
_DECIMAL = re.compile(r"\d{1,3}\.\d{5,}")
_NANP = re.compile(r"1[ .\-]\(?[2-9]\d\d\)?[ .\-]\d{3}[ .\-]\d{4}")  # North America's 1-NXX-NXX-XXXX
_EXTENSION = re.compile(r"\s?(?:x|ext\.?|#)\s?\d{1,6}$", re.IGNORECASE)


def _has_country_code(candidate: str) -> bool:
    return candidate.startswith(("+", "00", "(+"))


def phone_valid(candidate: str, after_call_word: bool = False) -> bool:
    """Shape rules for a phone number in any national or international format: 7 to 15 digits (an
    extension aside); separators single spaces, dots, dashes or slashes, or an area code in parentheses;
    a bare digit run only when 10-11 digits long, 12-13 after a trunk 0, with a + or 00 prefix, or right after
    a call word (`after_call_word`: "please call 3030633"); not a date, not a decimal or grouped-thousands
    number, not binary or repeated digits, not ending in a one-digit group other than 0 (a check digit). A
    leading "1-" of North America counts as a country code, a leading "8 " before ten digits as the trunk
    prefix of Russia and its neighbours; a list of round numbers (90 100 110) is none. (Whether a country's
    numbering plan has the number is `phone_in_plan`'s question.)"""
    body = _EXTENSION.sub("", candidate)
    digits = sum(ch.isdigit() for ch in body)
    if not 7 <= digits <= 15:
        return False
    if _DATE_LIKE.match(body) or _IPV4.fullmatch(body):  # 2019-05-12, 12.05.2019; an address left to IP_ADDRESS
        return False
    groups = re.split(r"[\s.\-—()+]+", body.strip("()+"))
    groups = [g for g in groups if g]
    used = set(re.sub(r"\D", "", body))
    if len(groups) > 2 and not body.startswith(("0", "+")) and all(g.endswith("0") for g in groups) and all(
            int(a) < int(b) for a, b in pairwise(groups)):
        return False  # 90 100 110: a list of round numbers
    if len(groups) > 2 and len({len(g) for g in groups}) == 1 and len(groups[0]) in (3, 4) and all(
            0 < int(b) - int(a) < 100 for a, b in pairwise(groups)):
        return False  # 913-919-943: a list of years
    if len(groups) == 2 and groups[1] == "000" and " " in body:
        return False  # 3000 000: thousands
    if used <= {"0", "1"} or len(used) == 1 or (len(groups) > 2 and len(set(groups)) == 1) or _DECIMAL.fullmatch(body):
        return False  # 000 0000 0001: binary; 55555555555, 24 24 24 24 24: repeated; 52.373180: a coordinate
    international = _has_country_code(body) or _NANP.fullmatch(body) is not None  # 1-800-555-0199
    trunk_8 = groups[0] == "8" and digits == 11  # Russia's and its neighbours' trunk 8: 8 (495) 123-45-67
    if not international and (digits > 13 or _SSN_SHAPE.fullmatch(body)
                              or any(len(g) == 1 for g in groups[1 if trunk_8 else 0:-1])):
        return False  # national numbers have at most 13 digits; 123-45-6789 is an SSN's shape; 1.2.3.4 a version
    if len(groups) > 1 and len(groups[-1]) == 1 and groups[-1] != "0":
        return False  # 250-64847-1: a check digit (book, account numbers); a switchboard's "089 1234-0" stays
    if len(groups) == 1:  # a bare run: 10-11 digits, a trunk-0 mobile of 12-13 (082186310898), or after a call word
        return (international or 10 <= digits <= 11 or (digits >= 12 and body[0] == "0" and body[1] != "0")
                or after_call_word)
    if "." in body and "(" not in body and all(len(g) == 3 for g in groups[1:]) and len(groups[0]) <= 3:
        return False  # 12.345.678: a number with grouped thousands
    if len(groups) == 2 and body.count(".") == 1 and body.replace(".", "").isdigit() and not after_call_word:
        return False  # 300.5849 gallons, 1380384.27: a decimal, unless a call word comes before it
    if not international and len(groups) == 2 and all(len(g) == 4 for g in groups) and (
            all(g.startswith(("19", "20")) for g in groups) or 1000 <= int(groups[0]) < int(groups[1]) < min(
            2100, int(groups[0]) + 150)):
        return False  # two years: 1999 2004, a life (1649 1721)
    return max(len(g) for g in groups) <= 10


# Why phonenumbers (Google's libphonenumber metadata) on top of the shape rules: it knows each country's
# numbering plan, which area codes and mobile prefixes are in use and how long their numbers are, which no
# shape rule can tell ("329 11582" is well formed; no plan has it). It runs only on candidates that passed
# the shape rules, cached per value, and after a quick test of each region's number pattern, since one parse
# costs about 60 microseconds.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3041-\u309f\u30a0-\u30ff]")
HAN_CONTEXT_CHARS = 40  # how far either side of a candidate a Chinese character makes it Chinese text
# a full North American grouping, (415) 555-0132 or 415-555-0132: a phone by its shape, in any plan or none
_NANP_GROUPING = re.compile(r"(?:1[ .\-])?(?:\(\d{3}\) ?|\d{3}(?:[ .]| ?- ?))\d{3}(?:[ .]| ?- ?)\d{4}")


_compiled = cache(re.compile)  # the plans' patterns, more than `re`'s own cache holds


def _trunk_prefix_written(parsed: phonenumbers.PhoneNumber, digits: str) -> bool:
    """Whether a national number carries its trunk prefix where its country writes one: 020 7946 0958 in
    Britain, not 20 7946 0958 (libphonenumber's matcher makes the same check, in a private function)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(
        phonenumbers.region_code_for_country_code(parsed.country_code), None)
    national = phonenumbers.national_significant_number(parsed)
    if metadata is None or digits != national:  # something before the national number was stripped: the prefix
        return True
    for number_format in metadata.number_format:
        leading = number_format.leading_digits_pattern
        if (not leading or _compiled(leading[-1]).match(national)) and _compiled(number_format.pattern).fullmatch(national):
            rule = number_format.national_prefix_formatting_rule
            return (not rule or bool(number_format.national_prefix_optional_when_formatting)
                    or re.fullmatch(r"\(?\\1\)?", rule) is not None)  # "(\1)": the first group alone, no prefix
    return True


def _japanese_near(text: str, start: int, end: int) -> bool:
    return _KANA.search(text, max(0, start - HAN_CONTEXT_CHARS), end + HAN_CONTEXT_CHARS) is not None


def _chinese_near(text: str, start: int, end: int) -> bool:
    """Chinese characters near text[start:end] and no Japanese kana: Japanese text, which writes kanji too,
    takes the other plans (Japan's among them)."""
    window = max(0, start - HAN_CONTEXT_CHARS), end + HAN_CONTEXT_CHARS
    return _HAN.search(text, *window) is not None and not _japanese_near(text, start, end)


@cache
def _plan_patterns(region: str) -> tuple[re.Pattern, re.Pattern | None, str, re.Pattern | None] | None:
    """A region's pattern of national numbers, trunk prefix, country code and international call prefix;
    None where its parsing rewrites the digits (Argentina, Brazil), so no quick test is safe."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata.national_prefix_transform_rule:
        return None
    optional = lambda pattern: _compiled(pattern) if pattern else None
    return (_compiled(metadata.general_desc.national_number_pattern), optional(metadata.national_prefix_for_parsing),
            str(metadata.country_code), optional(metadata.international_prefix))


_NUMBER_KINDS = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
                 "voip", "pager", "uan", "voicemail", "no_international_dialling")


def _compile_plan(region: str) -> None:
    """Compile a region's patterns into libphonenumber's pattern cache: on first use they cost a few
    milliseconds a number, which made the first thousand documents several times slower than the rest."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    patterns = [getattr(metadata, kind).national_number_pattern for kind in _NUMBER_KINDS if getattr(metadata, kind)]
    for number_format in metadata.number_format:
        patterns += [number_format.pattern, *number_format.leading_digits_pattern]
    for pattern in patterns + [metadata.national_prefix_for_parsing, metadata.international_prefix]:
        if pattern:
            re_compile(pattern)
    _plan_patterns(region)


def _may_be_in_plan(digits: str, region: str) -> bool:
    """A necessary condition for `phonenumbers.parse` and `is_valid_number` to accept the digits in `region`, ten
    times cheaper: the national number pattern matches them, after a country code or trunk prefix is taken off.
    (Checked against the full test on 300,000 random numbers: it never said no where the full test said yes.)"""
    patterns = _plan_patterns(region)
    if patterns is None:
        return True
    national, trunk, country_code, international = patterns
    if international and international.match(digits):  # 0081...: another country's number, dialled from here
        return True
    tails = [digits, digits[len(country_code):]] if digits.startswith(country_code) else [digits]
    tails += [tail[m.end():] for tail in tails if trunk and (m := trunk.match(tail))]
    return any(national.fullmatch(tail) for tail in tails)


def _parse(number: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """libphonenumber's reading of a number in a region (None: with its country code), or None if it has none."""
    try:
        return phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None


@lru_cache(maxsize=65536)
def phone_in_plan(candidate: str, regions: tuple[str, ...], after_call_word: bool = False) -> bool:
    """Whether a number written without a country code is a valid number of one of the regions' numbering
    plans, written with the trunk prefix where that country writes one; right after a call word, a possible
    number is enough: a local number without its area code (热线 63376888, "call 3030633")."""
    number = _EXTENSION.sub("", candidate)
    digits = re.sub(r"\D", "", number)
    possible = False
    for region in regions:
        if not after_call_word and not _may_be_in_plan(digits, region):  # a possible number may be no valid one
            continue
        parsed = _parse(number, region)
        if parsed is None:
            continue
        if phonenumbers.is_valid_number(parsed) and _trunk_prefix_written(parsed, digits):
            return True
        possible = possible or (after_call_word and phonenumbers.is_possible_number(parsed))
    return possible


def phone_is_weak(candidate: str) -> bool:
    """Two digit groups, no country code, trunk 0 or parentheses ("467 3395"): a local number, or a street
    number and a house number. Such a candidate is taken for an address when a street name follows it or an
    apartment word precedes it, unless a phone word (`PHONE_CONTEXT`) comes shortly before."""
    body = _EXTENSION.sub("", candidate)
    return not body.startswith(("+", "0", "(")) and len(re.findall(r"\d+", body)) == 2


# phone words of other languages (German, Dutch, Catalan, French, Danish, Latvian, Finnish, Icelandic, Croatian, Spanish,
# Portuguese, Indonesian, Tagalog, Vietnamese, Welsh, Cyrillic, Greek, Arabic, Persian, Urdu, Hebrew, Hindi, Bengali,
# Korean, Thai, Georgian, Armenian, Mongolian), not the words for television (телевизор, τηλεόραση, โทรทัศน์)
_PHONE_WORDS_ELSEWHERE = (r"telefon|telefoon|tel[èé]fon|t[ée]l\.|t[ée]l\b|tlf|t[āa]lr|puh\b|puh\.|puheli[nm]|\bs[íi]m[ia]\b|\bmob\."
                          r"|\bmobil\b|celular|m[óo]vil|telem[óo]vel|tfno|telepon|telp\b|telp\.|telepono|điện thoại|\bs?đt\b"
                          r"|ff[ôo]n\b|тел(?:\.|\b|ефон)|тэлеф|утас|τηλ(?:\.|\b|[έε]φων)|هاتف|جوال|تلفون|تلفن|فون|موبائل"
                          r"|טלפון|फ़ोन|फोन|मोबाइल|ফোন|전화|연락처|โทร(?!ทัศน์)|ტელ|հեռ|факс|faks")
PHONE_CONTEXT = re.compile(r"phone|tel\b|tel\.|call|mobile|cell|fax|contact|reach|number|whatsapp|sms|text me"
                           r"|t[ée]l[ée]phone|tel[ée]fono|handy|" + _PHONE_WORDS_ELSEWHERE + "|电话|電話|手机|携帯|联系|致电|传真|热线|問い?合わ?せ", re.IGNORECASE)
PHONE_CONTEXT_CHARS = 48  # how far before a weak candidate the phone word may be
_ADDRESS_AFTER = re.compile(r",? ?(?:[A-ZÀ-ÞΑ-Ω][\w'\-]|(?:rue|street|st|road|rd|avenue|ave|drive|lane|way|place|close|"
                            r"square|sq|blvd|boulevard|via|calle|strasse|straße)\b)")
_ADDRESS_BEFORE = re.compile(r"(?:apt|apartment|suite|unit|no|flat|room|house|lives at|address:?)\.?\s*$", re.IGNORECASE)
# statute and section numbers (§ 44-12-236, Section 99-35-115, Tenn. Code Ann. 39-17-1351), identifiers and page ranges are not phones
_REFERENCE_BEFORE = re.compile(r"(?:§|\b(?:section|sec\.|art\.|article|chapter|code ann\.|u\.s\.c\.|c\.f\.r\.|isbn|issn"
                               r"|doi|pp?\.)):?\s*$", re.IGNORECASE)  # not "mjzgroup. 08714342399"
# a term or the result of a sum, as maths in fine-tuning data writes them: "2250-1800=$<<2250-1800=450>>450",
# "5200-80-80*3=4880", "= 3600000000000 + 62426244000 + ...", "94962 × 4694 = 43957319824", "the result of
# 512088 × 137872 is 7105356608", "What is the result of 660-549695?"
_ARITHMETIC_AFTER = re.compile(r"\s?(?:[=×÷]|\*\s?\d)|\s\+\s\d|\s-\s\d+\s?=")  # 84834150134 - 6778576 = ...
_ARITHMETIC_BEFORE = re.compile(r"(?:[\d)]\s?[=+×*÷]|\b(?:result|sum|product|difference|quotient)\b.{0,30}\b(?:of|is|equals)"
                                r":?|\bequals)\s*-?$", re.IGNORECASE | re.DOTALL)  # ... = -84827371558
_DOI = re.compile(r"\b10\.\d{4,9}/\S*$")  # inside a DOI: 10.1053/j.ajkd.2010.06.011
_TEXT_TO = re.compile(r"\b(?:txt|text|send|reply)\b \S+ to $", re.IGNORECASE)
# a US ZIP+4 (90210-4321), a Brazilian CEP (89259-565), and a sneaker's style code (314254-003) of the same kind
_POSTAL_OR_STYLE_CODE = re.compile(r"\d{5}-\d{3,4}|\d{6}-\d{3}")
_JAPANESE_POSTAL_CODE = re.compile(r"\d{3}-\d{4}")  # 〒100-0001, or any such number amid Japanese text
_PORTUGUESE_POSTAL_CODE = re.compile(r"(?:\d{1,4} )?\d{4}-\d{3}(?= [A-ZÀ-Þ])")  # (55) 2710-628 Sintra
_RANGE = re.compile(r"(\d{2,5})[\-–—](\d{2,5})")
# sums of money ("40 000 000 SEK", "USD 25 000 000", "€ 1 250 000"; found on ECHR train) and quantities
# ("33333233334 meters", a "2000-100" coupon: 2000-100的券; found on our web labels' dev part) are not phones
_CURRENCY = (r"(?:USD|EUR|GBP|CHF|SEK|NOK|DKK|JPY|CNY|RMB|CAD|AUD|RUB|PLN|CZK|HUF|TRY|INR|BRL|MXN|HKD|SGD|ZAR|KRW"
             r"|euros?|dollars?|pounds|francs?|pesos?|pesetas?|kronor|kroner|kronur|lire|yuan|rubles?|roubles?"
             r"|(?:ABŞ )?dolları|d[oó]lares|долар\w*|доллар\w*|евро|рубл\w*|złotych|forint"
             r"|[$€£¥₹₽]|元|万元)")
_UNIT = r"(?:meters|metres|km|miles|feet|kg|tons|views|subscribers|likes|people|times|的?券|块|次|人|米|公里|万|亿|น\.)"
_AMOUNT_BEFORE = re.compile(_CURRENCY + r"\s?$", re.IGNORECASE)
# a currency sign right before a digit begins the next amount: "08717890890£1.50 per msg" is a number, then a price
_QUANTITY_AFTER = re.compile(r"\s?(?:" + _CURRENCY + "|" + _UNIT + r")(?![A-Za-z]|(?<=[$€£¥₹₽])\d)", re.IGNORECASE)
# numbers that the words before them say are something else: order, build and QQ numbers, passwords
_OTHER_NUMBER_BEFORE = re.compile(r"(?:order|invoice|tracking|ticket|build|version|registration|serial|account"
                                  r"|(?:customer|member|company) ?(?:no\b|number|id\b|#)|membership|reference|\bref\."
                                  r"|sku|model|patent|password|passcode|\bvat\b|\btax\b|rekening|konto|\ba/c\b|acct"
                                  r"|timestamp|epoch|\bts\b|automerge|\bnr\b|\bx-[a-z]+(?:-[a-z]+)*:"
                                  r"|passport|postcode|postal code|\bzip\b|\bupc\b|\bean\b|gtin|barcode"
                                  r"|(?<![a-z])qq|wechat|微信|企鹅|扣扣|薇信|订单|单号|编号|代码|密码|群号|型号|卡号|账号|帐号"
                                  r"|工号|会员|发票|房间|房号|用户|邮编|邮政编码|护照|(?<![a-z])u?id\b)", re.IGNORECASE)
# a messenger's or a video meeting's label right before the number ("Zoom: 5348583561", a meeting's id)
_MESSENGER_LABEL = re.compile(r"(?:(?<![a-z])qq|wechat|微信|企鹅|扣扣|\bzoom|meeting id|webex)(?:号码?)?\s?[:：]?\s?$", re.IGNORECASE)
_MASKED_IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){2}")  # 220.234.64.*: an address with its last part hidden
# a bare digit run ("please call 3030633") is taken for a phone only right after one of these
_CALL_WORD = re.compile(r"(?:call|phone|tel\b|tel\.|mobile|cell|fax|whatsapp|hotline|contact|" + _PHONE_WORDS_ELSEWHERE + "|电话|電話|手机|携帯|致电|传真|热线)",
                        re.IGNORECASE)
OTHER_NUMBER_CHARS = 20  # how far before a candidate such a word may be
_CN_MOBILE = re.compile(r"(?:\+?86[ \-]?)?1[3-9]\d[ \-]?\d{4}[ \-]?\d{4}")  # too phone-like to be anything else


def in_arithmetic(text: str, start: int, end: int) -> bool:
    """Whether the number text[start:end] is a term or the result of a sum (checked before phone numbers and
    payment cards: a sum's result may pass the Luhn check)."""
    return (_ARITHMETIC_AFTER.match(text, end) is not None
            or _ARITHMETIC_BEFORE.search(text, max(0, start - 48), start) is not None)


def _is_range(candidate: str) -> bool:
    """1465-1467: two numbers of one length, the second a little larger (pages, years); 500-1000: two round
    numbers, the second larger."""
    m = _RANGE.fullmatch(candidate)
    if not m:
        return False
    low, high = m.group(1), m.group(2)
    if len(low) == len(high):
        return 0 < int(high) - int(low) < 1000
    return low.endswith("0") and high.endswith("0") and int(high) > int(low)


def _portuguese_postal_code(text: str, start: int, end: int) -> bool:
    m = _PORTUGUESE_POSTAL_CODE.match(text, start)
    return m is not None and m.end() == end


def _weak_phone_accepted(text: str, start: int, end: int) -> bool:
    if PHONE_CONTEXT.search(text, max(0, start - PHONE_CONTEXT_CHARS), start):
        return True
    return not _ADDRESS_AFTER.match(text, end)


_NUMBER_LABEL = re.compile(r"\bno\s?\.\s?$", re.IGNORECASE)  # "whatsapp no. 8210699215"
_OWN_NUMBER = re.compile(r"\b(?:my|your|our|his|her|their|mera|meri|apna)\s+(?:number|no\b)", re.IGNORECASE)  # "mera number hai"


def _bare_run_called(text: str, start: int, end: int) -> bool:
    """A phone word shortly before or after a bare digit run, or someone's number ("number" alone is no phone word
    here: "a random 10-digit number: 4829301756"), or a "no." right before it."""
    window = max(0, start - PHONE_CONTEXT_CHARS)
    return (_CALL_WORD.search(text, window, start) is not None or _OWN_NUMBER.search(text, window, start) is not None
            or _CALL_WORD.search(text, end, end + 30) is not None
            or _NUMBER_LABEL.search(text, max(0, start - 6), start) is not None)


def _possible_abroad(candidate: str) -> bool:
    """Whether a number written with its country code (+, 00) has a length that country's plan allows: not a sum's
    "+960397912423686" (Maldives numbers have 7 digits). Only the length: a number that is no longer in use or
    not yet in the library's plan is still someone's."""
    number = _EXTENSION.sub("", candidate).lstrip("(")
    parsed = _parse("+" + number[2:] if number.startswith("00") else number, None)
    return parsed is None or phonenumbers.is_possible_number(parsed)


def _valid_abroad(digits: str) -> bool:
    """Whether digits that begin with a country code, its + left out, are a valid number of that country."""
    parsed = _parse("+" + digits, None)
    return parsed is not None and phonenumbers.is_valid_number(parsed)


def _number_of_another_kind(text: str, start: int, end: int, call_word: bool) -> bool:
    """Whether the words around text[start:end] make it another kind of number: "Apt. 722 20 40", the number of a
    flat; "§ 44-12-236", a statute; "40 000 000 SEK", an amount; a range, a sum, a DOI, an order number, an IP
    address with its last part hidden."""
    candidate, before = text[start:end], max(0, start - 16)
    return bool(_is_range(candidate)
                or (_ADDRESS_BEFORE.search(text, before, start) and not call_word and len(re.sub(r"\D", "", candidate)) < 10)
                or _REFERENCE_BEFORE.search(text, before, start) or _AMOUNT_BEFORE.search(text, before, start)
                or _QUANTITY_AFTER.match(text, end) or in_arithmetic(text, start, end)
                or _DOI.search(text, max(0, start - 40), start) or (_other_number(text, start) and not _CN_MOBILE.fullmatch(candidate))
                or (text.startswith((".*", ".x"), end) and _MASKED_IP.fullmatch(candidate)))


_TWO_YEARS = re.compile(r"(?:19|20)\d\d(?:19|20)\d\d")


def _own_mobile(text: str, start: int, end: int, regions: tuple[str, ...]) -> bool:
    """Whether text[start:end], a bare run of 8 to 10 digits, is a mobile number of the plans of the document's own
    language, trunk prefix or not ("Gia chủ Linh 904268933", "Lankovskis 29156060"). Only against a language's own
    plans: the 66 default ones hold most runs of that length somewhere."""
    candidate = text[start:end]
    if not (candidate.isdigit() and 8 <= len(candidate) <= 10 and candidate[0] != "0") or _TWO_YEARS.fullmatch(candidate):
        return False
    if _chinese_near(text, start, end) or _number_of_another_kind(text, start, end, False):
        return False
    return any((parsed := _parse(candidate, region)) is not None and phonenumbers.is_valid_number(parsed)
               and phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE for region in regions)


def _is_phone(text: str, start: int, end: int, regions: tuple[str, ...], regions_han: tuple[str, ...]) -> bool:
    """Whether text[start:end], a match of the phone pattern, is a phone number where it stands. A number
    without a country code must also be in the numbering plan of one of `regions` (`regions_han` amid Chinese
    text), unless it has North America's full grouping; outside Chinese text, a bare digit run without a trunk 0
    also needs a phone word near it (`_bare_run_called`)."""
    candidate = text[start:end]
    call_word = _CALL_WORD.search(text, max(0, start - 20), start) is not None
    abroad = ((candidate.isdigit() and 11 <= len(candidate) <= 13) or _CODE_SPACE_NUMBER.fullmatch(candidate)) and _valid_abroad(
        candidate.replace(" ", ""))  # 447801259231, 44 7732584351
    if not (abroad or phone_valid(candidate, call_word)) or _number_of_another_kind(text, start, end, call_word):
        return False
    if phone_is_weak(candidate) and not abroad and not _weak_phone_accepted(text, start, end):
        return False
    if _TEXT_TO.search(text, max(0, start - 30), start) and re.match(r"[1-9]\d{3,5}\b", candidate):
        return False  # "txt DIS to 87121 18+": an SMS short code, and an age
    postal = _POSTAL_OR_STYLE_CODE.fullmatch(candidate) or _portuguese_postal_code(text, start, end) or (_JAPANESE_POSTAL_CODE.fullmatch(candidate) and (
        text[max(0, start - 2):start].strip() == "〒" or _japanese_near(text, start, end)))
    if postal and not PHONE_CONTEXT.search(text, max(0, start - PHONE_CONTEXT_CHARS), start):
        return False  # a postal or style code, unless a phone word comes before it (WhatsApp 98840-0815)
    if candidate.startswith("00") and candidate.isdigit():  # a bare 00 run is a number dialled abroad, or not a phone
        return _valid_abroad(candidate[2:])  # 0061947069: an account number
    if abroad or _has_country_code(candidate):
        return abroad or _possible_abroad(candidate)
    han = _chinese_near(text, start, end)
    if candidate.isdigit() and candidate[0] != "0" and not han and not _bare_run_called(text, start, end):
        return False  # 7105356608: a bare run without a trunk 0 or a phone word is a result, an id (amid Chinese
        # characters, where the plans are strict, 4008123123 and 13774321320 are phones as they stand)
    if not han and _NANP_GROUPING.fullmatch(_EXTENSION.sub("", candidate)):
        return True
    return phone_in_plan(candidate, regions_han if han else regions, call_word)


# A public service number (110, 12308, 12345) is a phone where Chinese text dials it: right after a dialling or
# hotline word (拨打, 致电, 电话, 热线) or right before one (热线, 打电话), and in the short-number plan of one of the
# regions. Only amid Chinese text: in English, "call 100 people" holds India's police number.
_SHORT_NUMBER = re.compile(r"\d(?<![\w.\-:]\d)\d{2,5}(?![\w\-]|[.:]\d)", re.ASCII)
_DIAL_GATE = re.compile(r"拨打|致电|拨|电话|热线")
_DIAL_BEFORE = re.compile(r"(?:拨打|致电|拨|电话|热线)[：:]?\s?$")
_HOTLINE_AFTER = re.compile(r"\s?(?:热线|电话|打电话)")


def _is_dialled_short_number(text: str, start: int, end: int, regions_han: tuple[str, ...]) -> bool:
    if not (_DIAL_BEFORE.search(text, max(0, start - 4), start) or _HOTLINE_AFTER.match(text, end)):
        return False
    if not _chinese_near(text, start, end):
        return False
    return any((parsed := _parse(text[start:end], region)) is not None
               and phonenumbers.is_valid_short_number_for_region(parsed, region) for region in regions_han)


_HEX_BEFORE = re.compile(r"[0-9a-fA-F]*$")
_HEX_AFTER = re.compile(r"[0-9a-fA-F]*")
_HEX_REACH = 64  # how far either side the hexadecimal word is followed: a longer one is a hash or a blob anyway


def _in_hex_word(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies inside a hexadecimal word of 16 characters or more with a letter in it (a hash
    or an id: 1afa02df02c908a558b4036e80242fac, 0xa9059cbb...), or inside a run of hexadecimal characters longer
    than `_HEX_REACH` before it (hex-encoded data, whatever precedes it)."""
    reach = max(0, start - _HEX_REACH)
    first = _HEX_BEFORE.search(text, reach, start).start()
    last = _HEX_AFTER.match(text, end, end + _HEX_REACH).end()
    if last - first < 16 or text[first:last].isdigit():
        return False
    return first == reach or not text[first - 1].isalnum() or (first >= 2 and text[first - 2:first] in ("0x", "0X"))


# An emergency number (911, 999, 112, 102: libphonenumber's short-number plans) where the words before it call it:
# "call APD Dispatch on 911.", "па тэлефоне 102"; not where a word or a sum follows ("call 100 people").
_CALL_VERBS, _CALL_VERBS_CYRILLIC = ("call", "Call", "CALL", "dial", "Dial"), ("тэлефон", "телефон")
_CALLED_NUMBER = re.compile(r"(?:(?<!\w)(?:call|dial)(?!\w)|тэлефон\w*|телефон\w*)(?: [\w.]+){0,3}? (?:on |at )?"
                            r"(\d{3})(?![\w\-]|[.:,/]\d)", re.IGNORECASE)
_WORD_AFTER = re.compile(r"\s*[^\W\d_]|\s?[%*/+=×]")  # a word, a per cent sign or a sum after it
_SPACED_DASH_GATE = re.compile(r" - \d")
_SPACED_NANP = re.compile(r"\d(?<![\w\-]\d)\d{2} ?- ?\d{3} ?- ?\d{4}(?![\w\-]|[.:]\d)", re.ASCII)


# A local number of six or seven digits in groups, as small towns and service lines write them, after a phone word
# earlier in the sentence with no other number between ("патэлефануйце ў дыспансер: 42-67-88 ці 40-69-86"); not a
# date (12-05-19) and not a range (120-150). Without a phone word such numbers are anything.
_GROUPED_LOCAL = re.compile(r"\d{2,3}([\- ])\d{2,3}(?:\1\d{2,3})?")  # the whole of a match of the phone pattern
_GROUPED_LOCAL_CHARS = 64  # how far before it the phone word may be
_LIST_BETWEEN = re.compile(r"\s?(?:,|/|;|\w{1,3})?\s?")  # 42-67-88 ці 40-69-86, 42-67-88, 40-69-86


def _called_local_number(text: str, start: int, end: int, listed_after: int) -> bool:
    """Whether text[start:end] is a local number of six or seven digits in groups after a phone word, or listed
    right after such a number (ending at `listed_after`)."""
    if not _GROUPED_LOCAL.fullmatch(text, start, end):
        return False
    groups = re.findall(r"\d+", text[start:end])
    if not 6 <= sum(map(len, groups)) <= 7 or _is_range(text[start:end]):
        return False
    if listed_after >= 0 and _LIST_BETWEEN.fullmatch(text, listed_after, start):
        return True
    if len(groups) == 3 and all(len(g) == 2 for g in groups):
        day_month = sorted(int(g) for g in groups[:2])
        if day_month[0] <= 12 and day_month[1] <= 31:
            return False  # a date: 12-05-19
    window = text[max(0, start - _GROUPED_LOCAL_CHARS):start]
    words = list(_CALL_WORD.finditer(window))
    return bool(words) and "\n" not in window[words[-1].end():] and not any(ch.isdigit() for ch in window[words[-1].end():])


@cache
def _vanity_regions(regions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(r for r in regions if r in ("US", "CA"))


@lru_cache(maxsize=4096)
def _emergency_number(number: str, regions: tuple[str, ...]) -> bool:
    """An emergency number of one of the regions (libphonenumber's short-number plans)."""
    return any(phonenumbers.is_emergency_number(number, region) for region in regions)


def _other_number(text: str, start: int) -> bool:
    """An order, build, QQ or similar number: such a word shortly before, and no phone word near it; or a QQ,
    WeChat or video meeting label right before it, whatever comes earlier ("联系方式:QQ:2811437428", "Zoom:
    5348583561")."""
    if _MESSENGER_LABEL.search(text, max(0, start - 14), start):
        return True
    window = max(0, start - OTHER_NUMBER_CHARS)
    return bool(_OTHER_NUMBER_BEFORE.search(text, window, start)) and not PHONE_CONTEXT.search(text, window, start)


# --------------------------------------------------------------------------- detectors
_DIGIT = re.compile(r"\d")
_SECRET = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{36,255}\b|\bgithub_pat_[A-Za-z0-9_]{60,255}\b"  # GitHub tokens
    r"|\bglpat-[A-Za-z0-9_\-]{20}\b"  # GitLab
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}\b"  # Slack
    r"|\bAIza[0-9A-Za-z_\-]{35}\b"  # Google API key
    r"|\b[rs]k_(?:live|test)_[0-9A-Za-z]{16,}\b"  # Stripe
    r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{32,}\b"  # OpenAI / Anthropic style keys
    r"|\bhf_[A-Za-z0-9]{30,}\b"  # Hugging Face
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # JSON web token
)
_SECRET_HINTS = ("PRIVATE KEY", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "AIza", "k_live_", "k_test_", "sk-", "hf_", "eyJ")
_URL_CREDENTIALS = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://([^\s/:@]+:[^\s/@]+)@(?=[^\s/@])")
_EMAIL = re.compile(r"(?<![\w.+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?@"
                    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w\-])", re.ASCII)  # 发到a@b.cn。
# an address in other letters (约翰·多伊@example.com, 老板@公司.com), where a quote, bracket, space or colon shows
# where it begins: amid Chinese text with nothing between, the words before would run into it
_UNICODE_EMAIL = re.compile(r"(?:(?<=[\"'<(\[\s,:：])|^)[^\W\d_][\w·.\-]{0,62}@(?:[\w\-]{1,63}\.)+[A-Za-z]{2,24}(?![\w\-])")
_CUT_EMAIL = re.compile(r"(?<![\w.+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,62}@[a-z0-9\-]{2,63}(?=\.$)")  # a domain in lower case: not Knowledge@Wharton
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
# Patterns begin with a consumed character and check the one before it in a lookbehind that includes it:
# Python's regex engine scans fast for a leading character class, not for a leading lookbehind (3x).
# Number patterns are ASCII-only: `\w` then means [A-Za-z0-9_], so "电话15611460088号" still matches.
_CN_ID = re.compile(r"[1-8](?<![\w\-][1-8])\d{16}[\dXx](?![\w\-])", re.ASCII)
_CARD = re.compile(r"\d(?<![\w\-+.]\d)(?:[ \-]?\d){11,18}(?![\w\-]|\.\d)", re.ASCII)
_SSN = re.compile(r"(\d(?<![\w\-]\d)\d\d)([\- ])(\d{2})\2(\d{4})(?![\w\-])", re.ASCII)
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}\.(?:\d{1,3}\.){2}\d{1,3}(?![\w]|\.\d)", re.ASCII)
_IBAN_GATE = re.compile(r"\d\d(?<=[A-Za-z]{2}\d\d)")  # two letters then two digits somewhere
_IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:")  # a quick test that begins with a plain character
_SLICE_BEFORE = re.compile(r"[\w)\]]\[$")  # an index right after a name: not [::1] in a URL
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})(?![\w:])")
_WORD_START = re.compile(r"\S*$")
_HANDLE = re.compile(r"[@#/=.:_]|x$", re.IGNORECASE)  # @s0922917350, a path or URL, x09438234092: no phone
_GLUED_PHONE = re.compile(r"0(?:(?<=[A-Za-z]0)(?:\d{9,12}(?!\d)|\d{2,4}(?: \d{2,4}){1,3}(?![\w\-]|[.:]\d))"
                          r"|(?<=[A-Za-z]-0)\d{9,12}(?![\w\-]|[.:]\d)"  # sms-08718727870, after a phone word only
                          r"|(?<![\w+]0)\d{9,12}(?=[A-Za-z]|\.\d[A-Za-z]))", re.ASCII)  # pa0773 251 295: Shona's "at";
# 08714342399.2stop: the run, then a word glued to a full stop


def _glued_elsewhere(text: str, start: int, end: int) -> bool:
    """Whether a digit run glued to the word before it belongs to something else: a handle, path or URL
    (@s0922917350, x09438234092), a hexadecimal id, or a word and a dash that are no phone word (sms-08718727870 is
    a phone)."""
    word = _WORD_START.search(text, max(0, start - 30), start)
    word = word.group() if word else ""
    return bool(_HANDLE.search(word) or _in_hex_word(text, start, end) or (word.endswith("-") and not PHONE_CONTEXT.search(word)))


# a trunk-0 number run on into the price or age after it, as SMS spam writes them: 08700621170150p, 0871212025016,
# 087187262701.50gbp (read against the plans: the number is the part before the price)
_PRICED_PHONE = re.compile(r"0(?<![\d_+]0)\d{9,10}(?=\d{1,3}p(?:pm)?(?![a-z])|\d?\.\d\d ?gbp|1[68](?:\+| ?£|$))",
                           re.ASCII | re.IGNORECASE)
_CODE_SPACE_NUMBER = re.compile(r"\d{2,3} \d{9,11}")  # a country code without its +, then the national number
_RUN_THEN_SHORT = re.compile(r"([+0]\d{9,13}) \d{1,3}")
_AREA_CODE = re.compile(r"0\d{2,3}[\-—]")  # 027-, Chinese text's area code before a local number
_LOCAL_NUMBER = re.compile(r"[1-9]\d{6,7}")
_AREA_SLASH_PHONE = re.compile(r"0(?<![\w+/.]0)\d{1,4}/ ?\d{3,8}(?:[ \-]\d{2,4}){0,2}(?![\w/]|[.\-]\d)", re.ASCII)
_SLASHED_PHONES = re.compile(r"0(?<![\w+/]0)\d{9,12}/0\d{9,12}(?![\w/])", re.ASCII)  # 07946746291/07880867867
# North American vanity numbers in capitals, with dashes or parentheses: 1-800-FLOWERS, 215-717-FIRE (read as
# digits against the plan; "728 KAJAANI" is a flat and a town)
_VANITY_GATE = re.compile(r"-[A-Z]{4}")  # a quick test: the letters follow a dash
_VANITY_PHONE = re.compile(r"(?<![\w\-])(?:1-)?(?:\(\d{3}\) ?|\d{3}-)(?:\d{3}-[A-Z]{4}|[A-Z]{3}-?[A-Z]{4}|[A-Z]{7})(?![\w\-])")
_PHONE = re.compile(
    r"(?=[+(\d])(?<![\w+/=])(?<![À-ɏͰ-ϿЀ-ӿ])(?<!\w-)(?<!\d[.:])(?<!www\.)"  # not glued to a Latin, Greek or
    # Cyrillic word (№ФС77-67790), not a web address (www.07781482378.com)
    r"(?=[+(\d][\d()+.\-— ]{6})"  # seven phone characters at least: not "2019 was"
    r"(?:(?:\+|\b00)\d{1,3}[ .\-]?|\(\+\d{1,3}\) ?)?"  # country code: +44, 0044, (+30)
    r"(?:\(0\)[ .\-]?|8 ?(?=\())?(?:\(\d{1,5}\)[ .\-]?)?"  # trunk (0) or 8, area code in parentheses
    r"\d{1,12}(?:[ .\-—]\d{1,10}){0,6}"  # digit groups, one separator between (an em dash in Chinese text)
    r"(?:[ ]?(?:x|ext\.?|#)[ ]?\d{1,6})?"  # extension
    r"(?!\w|[\-.:/]\d)", re.IGNORECASE | re.ASCII)


# full-width digits, Latin letters and the signs inside numbers and addresses, read as ASCII; not the full-width
# punctuation of Chinese and Japanese sentences (，：（）), whose ASCII forms mean other things to the rules
_FULL_WIDTH = re.compile(r"[０-９＠]")
_TO_ASCII = {ord(ch): ord(ch) - 0xFEE0 for ch in "０１２３４５６７８９＋－＠．＿"
             + "".join(map(chr, range(0xFF21, 0xFF3B))) + "".join(map(chr, range(0xFF41, 0xFF5B)))}
# line breaks and tabs escaped in a string literal or a JSON dump: read as the blanks they stand for, two
# characters for two ("666444555\\n666-444-555", "list:\\na@d.co\\nb@d.co")
_ESCAPED_BREAKS = re.compile(r"(?:\\[nrt])+")


# English is written around the world and Chinese numbers amid Chinese characters have plans of their own: their
# documents keep the configured plans
LANGUAGES_ON_DEFAULT_PLANS = frozenset({"en", "zh", "und"})
LANGUAGE_SHARE = 20.0  # per cent of a country's people who speak a language, for its plan to be checked
_CLDR_NAMES = {"tl": "fil", "iw": "he", "in": "id", "sh": "hr"}  # lid.176's codes that CLDR spells otherwise


# how sure langid must be of a language for its countries' plans to be used: on our labels' dev part, short English
# SMS and tweets taken for French or Basque scored 0.15-0.49, and documents of other languages named right 0.92-1.0
PLAN_LANGUAGE_MIN_SCORE = 0.8


def plan_language(langid: dict | None) -> str | None:
    """The language of a document for its phone numbers' plans: the langid step's label (`{"lang", "score"}`) when
    it is sure enough (`PLAN_LANGUAGE_MIN_SCORE`), else None (unknown)."""
    if isinstance(langid, dict) and langid.get("score", 0) >= PLAN_LANGUAGE_MIN_SCORE:
        return langid.get("lang")
    return None


@cache
def language_regions(lang: str) -> tuple[str, ...]:
    """The countries with a phone numbering plan where `lang` is an official language or spoken by at least
    `LANGUAGE_SHARE` per cent of the people (CLDR's territory-language table, through babel), each compiled once;
    () where CLDR knows none. Why: a national number in a Swedish text is Swedish or Finnish far more often than it
    is one of 66 countries' numbers that happens to fit, and a Shona text's numbers are Zimbabwe's."""
    from babel.core import get_global

    regions = tuple(sorted(
        territory for territory, languages in get_global("territory_languages").items()
        if territory in phonenumbers.SUPPORTED_REGIONS and (info := languages.get(_CLDR_NAMES.get(lang, lang))) is not None
        and (info.get("official_status") or info.get("population_percent", 0) >= LANGUAGE_SHARE)))
    for region in regions:
        _compile_plan(region)
    return regions


class PiiDetector:
    """Finds PII in text: non-overlapping spans, earlier detectors winning, in text order."""

    def __init__(self, entities: list[str] | tuple[str, ...] = PII_ENTITIES, ip_private: bool = False,
                 phone_regions: tuple[str, ...] = PHONE_REGIONS, phone_regions_han: tuple[str, ...] = PHONE_REGIONS_HAN,
                 phone_regions_by_language: bool = True):
        self.entities = tuple(e for e in PII_ENTITIES if e in entities)  # always in priority order
        self.ip_private = ip_private
        self.phone_regions, self.phone_regions_han = tuple(phone_regions), tuple(phone_regions_han)
        self.phone_regions_by_language = phone_regions_by_language
        phonenumbers.enable_pattern_cache()  # keep its compiled patterns: more than `re`'s own cache holds
        for region in self.phone_regions + self.phone_regions_han:  # compile the plans now, not on the documents
            _compile_plan(region)

    def _candidates(self, entity: str, text: str, regions: tuple[str, ...]):
        """(start, end) of each validated match of one entity type; `regions`: the numbering plans of phone numbers."""
        if entity == "SECRET":
            if not any(hint in text for hint in _SECRET_HINTS):  # `in` is C-fast; the alternation is not
                return
            for m in _SECRET.finditer(text):
                yield m.span()
        elif entity == "URL_CREDENTIALS" and "://" in text:
            for m in _URL_CREDENTIALS.finditer(text):
                yield m.span(1)
        elif entity == "EMAIL" and "@" in text:
            for m in _EMAIL.finditer(text):
                yield m.span()
            if not text.isascii():
                for m in _UNICODE_EMAIL.finditer(text):
                    if not m.group().isascii():
                        yield m.span()
            if text.endswith("."):  # a sentence cut at the dot before the top-level domain: "markus@hostel."
                m = _CUT_EMAIL.search(text, max(0, len(text) - 200))
                if m:
                    yield m.span()
        elif entity == "IBAN":
            if not _IBAN_GATE.search(text):
                return
            for m in _IBAN.finditer(text):
                value = m.group()  # may run on into the next word ("... GB29NWBK60161331926819 to"):
                cuts = [len(value)] + [i for i in range(len(value) - 1, 0, -1) if value[i] == " "]
                for cut in cuts:  # the longest prefix that validates, ending before a space
                    if iban_valid(value[:cut]):
                        yield m.start(), m.start() + cut
                        break
        elif entity == "CN_ID":
            for m in _CN_ID.finditer(text):
                if cn_id_valid(m.group()):
                    yield m.span()
        elif entity == "CREDIT_CARD":
            for m in _CARD.finditer(text):
                if card_valid(re.sub(r"[ \-]", "", m.group())) and not in_arithmetic(text, *m.span()):
                    yield m.span()
        elif entity == "US_SSN":
            for m in _SSN.finditer(text):
                if ssn_valid(m.group(1), m.group(3), m.group(4)) and not _other_number(text, m.start()):
                    yield m.span()
        elif entity == "IP_ADDRESS":
            for m in _IPV4.finditer(text):
                if len(m.group()) == 7 and (text[m.start() - 1:m.start()] == "-" or text[m.end():m.end() + 1] in "-/"):
                    continue  # 3.2.2.5-, C-2.1.3.1/b: a section number
                if ip_reportable(m.group(), self.ip_private):
                    yield m.span()
            if _IPV6_GATE.search(text):
                for m in _IPV6.finditer(text):
                    if _SLICE_BEFORE.search(text, max(0, m.start() - 2), m.start()) and text.startswith("]", m.end()):
                        continue  # l[::3], odds = l[1::2]: a slice of a list in code
                    if m.group().count(":") >= 2 and ip_reportable(m.group(), self.ip_private):
                        yield m.span()
        elif entity == "PHONE":
            yield from self._phone_candidates(text, regions)

    def _phone_candidates(self, text: str, regions: tuple[str, ...]):
        """(start, end) of each phone number, national numbers checked against the plans of `regions` (and of
        `phone_regions_han` amid Chinese text)."""
        own_plans = regions != self.phone_regions  # the plans of the document's language
        local_end = -1  # where the last local number after a phone word ended: 42-67-88 ці 40-69-86
        for m in _PHONE.finditer(text):
            spans = list(self._phones(text, *m.span(), regions))
            yield from spans
            if spans:
                continue
            if own_plans and _own_mobile(text, *m.span(), regions):
                yield m.span()
            elif _called_local_number(text, *m.span(), listed_after=local_end):
                local_end = m.end()
                yield m.span()
        for m in _GLUED_PHONE.finditer(text):  # call09050000327, 09066649731from: a trunk-0 run against letters
            if not _glued_elsewhere(text, *m.span()) and _is_phone(text, *m.span(), regions, self.phone_regions_han):
                yield m.span()
        for m in _PRICED_PHONE.finditer(text):  # 08700621170150p, Help08700621170150p
            if (not (m.start() and text[m.start() - 1].isalpha() and _glued_elsewhere(text, *m.span()))
                    and _is_phone(text, *m.span(), regions, self.phone_regions_han)):
                yield m.span()
        if "/" in text:  # an area code and a slash, as German and Czech write them: 030/12345678, 068/5229380
            for m in _AREA_SLASH_PHONE.finditer(text):
                if _is_phone(text, *m.span(), regions, self.phone_regions_han):
                    yield m.span()
        for m in _SLASHED_PHONES.finditer(text):
            slash = text.index("/", m.start())
            for span in ((m.start(), slash), (slash + 1, m.end())):
                if _is_phone(text, *span, regions, self.phone_regions_han):
                    yield span
        vanity_regions = _vanity_regions(regions)
        if vanity_regions and _VANITY_GATE.search(text):
            for m in _VANITY_PHONE.finditer(text):
                if phone_in_plan(phonenumbers.convert_alpha_characters_in_number(m.group()), vanity_regions):
                    yield m.span()
        if _DIAL_GATE.search(text):
            for m in _SHORT_NUMBER.finditer(text):
                if _is_dialled_short_number(text, *m.span(), self.phone_regions_han):
                    yield m.span()
        for verb in _CALL_VERBS if text.isascii() else _CALL_VERBS + _CALL_VERBS_CYRILLIC:  # str.find is C-fast; a
            # case-blind regex scan of the text was not (a quarter of the time)
            at = text.find(verb)
            while at >= 0:
                m = _CALLED_NUMBER.match(text, at)
                if m and _emergency_number(m.group(1), regions) and not _WORD_AFTER.match(text, m.end()):
                    yield m.span(1)
                at = text.find(verb, at + len(verb))
        if _SPACED_DASH_GATE.search(text):  # phone: 123 - 456 - 7890, North America's grouping
            for m in _SPACED_NANP.finditer(text):
                if (" " in m.group() and PHONE_CONTEXT.search(text, max(0, m.start() - PHONE_CONTEXT_CHARS), m.start())
                        and _is_phone(text, *m.span(), regions, self.phone_regions_han)):
                    yield m.span()

    def _phones(self, text: str, start: int, end: int, regions: tuple[str, ...], area_code: str = ""):
        """The phone numbers in one match of the phone pattern: the whole match; or else a bare run without the
        short number after it ("STOP 08452810071 16": an age, a price); or else, amid Chinese text, where the
        numbering plans are strict, numbers written side by side ("027-85931736 61107879"): the longest part up
        to a space that is one, then the rest, a local number taking the area code of the one before. (Elsewhere
        a list of years would split into numbers that some country's plan has.)"""
        regions_han = self.phone_regions_han
        if _is_phone(text, start, end, regions, regions_han) or (
                area_code and _LOCAL_NUMBER.fullmatch(text, start, end)
                and phone_in_plan(area_code + text[start:end], regions_han)):
            yield start, end
            return
        if not _chinese_near(text, start, end):
            run = _RUN_THEN_SHORT.fullmatch(text, start, end)
            if run and _is_phone(text, start, run.end(1), regions, regions_han):
                yield start, run.end(1)
            return
        spaces = [i for i in range(end - 1, start, -1) if text[i] == " "]
        for cut in spaces:
            if _is_phone(text, start, cut, regions, regions_han):
                yield start, cut
                area = _AREA_CODE.match(text, start, cut)
                yield from self._phones(text, cut + 1, end, regions, area.group() if area else "")
                return
        if spaces:
            yield from self._phones(text, spaces[-1] + 1, end, regions)

    def phone_regions_for(self, lang: str | None) -> tuple[str, ...]:
        """The numbering plans a national phone number of a document in `lang` is checked against: `phone_regions`
        for English, Chinese (whose numbers amid Chinese characters take `phone_regions_han`) and an unknown
        language; with `phone_regions_by_language`, those of the countries where another language is spoken
        (`language_regions`), where CLDR knows any."""
        if not self.phone_regions_by_language or not lang or lang in LANGUAGES_ON_DEFAULT_PLANS:
            return self.phone_regions
        return language_regions(lang) or self.phone_regions

    def find(self, text: str, lang: str | None = None) -> list[PiiSpan]:
        """The PII spans of `text`, a document in language `lang` (ISO 639 code, as `langid` labels it; None:
        unknown). Full-width digits, letters and signs (電話：０３－１２３４－５６７８, ａ＠ｂ．ｊｐ) are read as their
        ASCII forms, one character for one, and escaped line breaks (\\n) as blanks, so the spans are those
        of the text as given."""
        regions = self.phone_regions_for(lang)
        if not text.isascii() and _FULL_WIDTH.search(text):
            text = text.translate(_TO_ASCII)
        if "\\" in text:
            text = _ESCAPED_BREAKS.sub(lambda m: " " * len(m.group()), text)
        has_digit = _DIGIT.search(text) is not None
        taken: list[PiiSpan] = []  # disjoint, in order; a candidate need only be checked against its neighbours
        starts: list[int] = []  # (a scan of all spans taken was quadratic: 8 s for a list of 10,000 numbers)
        for entity in self.entities:
            if not has_digit and entity not in ("SECRET", "URL_CREDENTIALS", "EMAIL"):
                continue  # every other entity contains digits
            for start, end in self._candidates(entity, text, regions):
                at = bisect_right(starts, start)
                if (at == 0 or taken[at - 1].end <= start) and (at == len(taken) or end <= taken[at].start):
                    starts.insert(at, start)
                    taken.insert(at, PiiSpan(start, end, entity))
        return taken


class PiiScrubber(CorpusStep):
    """Replaces PII with typed placeholders (`<EMAIL>`) or salted pseudonyms (`<EMAIL:3f9a0c1d>`, the same
    value always giving the same pseudonym under one salt). Counts per type go to the stats and to
    `metadata["pii"]`; the values themselves are never logged or counted."""

    name = "pii"

    def __init__(self, cfg: PiiConfig, output_dir: str | Path):
        super().__init__(output_dir)
        self.cfg = cfg
        self.detector = PiiDetector(cfg.entities, cfg.ip_private, cfg.phone_regions, cfg.phone_regions_han,
                                    cfg.phone_regions_by_language)
        self._key = (cfg.salt or "").encode("utf-8")

    def replacement(self, entity: str, value: str) -> str:
        if self.cfg.replacement == "placeholder":
            return f"<{entity}>"
        digest = hashlib.blake2b(value.encode("utf-8"), key=self._key[:64], digest_size=4).hexdigest()
        return f"<{entity}:{digest}>"

    def scrub(self, text: str, lang: str | None = None) -> tuple[str, dict[str, int]]:
        """The text (a document in `lang`, None: unknown) with every detected item replaced, and the count per
        entity type."""
        spans = self.detector.find(text, lang)
        if not spans:
            return text, {}
        parts, counts, last = [], {}, 0
        for span in spans:
            parts.append(text[last : span.start])
            parts.append(self.replacement(span.entity, text[span.start : span.end]))
            counts[span.entity] = counts.get(span.entity, 0) + 1
            last = span.end
        parts.append(text[last:])
        return "".join(parts), counts

    def apply(self, doc: Document) -> bool:
        doc.text, counts = self.scrub(doc.text, plan_language(doc.metadata.get("langid")))
        if counts:
            doc.metadata["pii"] = counts
            self.count("docs_with_pii")
            for entity, n in counts.items():
                self.count(f"pii/{entity}", n)
        return True
