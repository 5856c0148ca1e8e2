import json
import random
from collections import Counter
from pathlib import Path

import pytest
from datatrove.data import Document

from conftest import read_jsonl
from corpus.config import ConfigError, PiiConfig, load_config
from corpus.pii import (
    PiiDetector,
    PiiScrubber,
    card_valid,
    cn_id_valid,
    iban_valid,
    language_regions,
    luhn_valid,
    phone_in_plan,
    phone_valid,
    plan_language,
)
from corpus.pipeline import clean

DATA = Path(__file__).parent / "data"
GOLD = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN",
        "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS"}


def overlap(a, b) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def test_detectors_on_labelled_presidio_sentences():
    """Precision and recall per entity type on real labelled sentences: fails when a detector regresses."""
    detector = PiiDetector(ip_private=True)  # the labels count private addresses as PII too
    found, missed, wrong, predicted = Counter(), Counter(), Counter(), Counter()
    for r in read_jsonl(DATA / "pii_presidio_generated.jsonl"):
        gold = [(s["start"], s["end"], GOLD[s["label"]]) for s in r["spans"] if s["label"] in GOLD]
        pred = [(p.start, p.end, p.entity) for p in detector.find(r["text"])]
        for g in gold:
            hit = any(p[2] == g[2] and overlap(p, g) >= (g[1] - g[0]) / 2 for p in pred)
            (found if hit else missed)[g[2]] += 1
        for p in pred:
            predicted[p[2]] += 1
            if not any(p[2] == g[2] and overlap(p, g) >= (p[1] - p[0]) / 2 for g in gold):
                wrong[p[2]] += 1
    for entity in ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS"):
        recall = found[entity] / (found[entity] + missed[entity])
        precision = 1 - wrong[entity] / predicted[entity]
        assert recall >= 0.95 and precision >= 0.95, (entity, recall, precision)


def test_checksums_decide_and_bad_numbers_are_left_alone():
    assert luhn_valid("4539578763621486") and not luhn_valid("4539578763621487")
    assert card_valid("4539578763621486") and not card_valid("9539578763621486")  # no issuer starts with 9
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and not iban_valid("GB82 WEST 1234 5698 7654 33")
    assert not iban_valid("GB82WEST123456987654")  # wrong length for GB
    assert cn_id_valid("11010519491231002X") and not cn_id_valid("110105194912310021")
    assert not cn_id_valid("110105194902300025")  # 30 February
    detector = PiiDetector()
    text = ("card 4539 5787 6362 1486, not 4539 5787 6362 1487; IBAN DE89370400440532013000 not "
            "DE89370400440532013001; ID 11010519491231002X not 110105194912310021; SSN 123-45-6789 not "
            "666-45-6789; build 1.2.3.4567")
    found = [(text[s.start:s.end], s.entity) for s in detector.find(text)]
    assert found == [("4539 5787 6362 1486", "CREDIT_CARD"), ("DE89370400440532013000", "IBAN"),
                     ("11010519491231002X", "CN_ID"), ("123-45-6789", "US_SSN")]


@pytest.mark.parametrize("text,value,entity", [
    ("write to jane.doe+news@example.co.uk today", "jane.doe+news@example.co.uk", "EMAIL"),
    ("手机：13812345678，请联系", "13812345678", "PHONE"),
    ("电话15611460088号", "15611460088", "PHONE"),  # digits right next to Chinese characters
    ("请发到abc.def@163.com。谢谢", "abc.def@163.com", "EMAIL"),  # an address right next to Chinese characters
    ("说明情况.02800923158", "02800923158", "PHONE"),  # after a full stop that ends a sentence, not a decimal
    ("all other queries, please call 3030633 & leave a message", "3030633", "PHONE"),  # short, after "call"
    ("contact WhatsApp no 9908256662", "9908256662", "PHONE"),  # "no" is no flat number after a phone word
    ("订单号码传真至：010-59222799，", "010-59222799", "PHONE"),
    ("有发票,包装齐全 13774321320 李先生", "13774321320", "PHONE"),  # a mainland mobile, whatever the words before
    ("give us a call at 1-888-533-0735.", "1-888-533-0735", "PHONE"),  # North America's leading 1
    ("Sapulpa Oklahoma.918-512-8844. Sooner", "918-512-8844", "PHONE"),  # right after a sentence's full stop
    ("WHATSAPP:98840-0815 https://t.co/x", "98840-0815", "PHONE"),  # a ZIP+4 shape after a phone word
    ("Zentrale: Tel. 089 1234-0 oder", "089 1234-0", "PHONE"),  # a switchboard's -0
    ("JOIN NOW 085277388005 #promo", "085277388005", "PHONE"),  # a trunk-0 mobile of 12 digits
    ("For more information whatsaap no. 8210699215", "8210699215", "PHONE"),  # ten digits are no flat number
    ("爱牙热线：63376888", "63376888", "PHONE"),  # short, after a hotline word
    ("お問い合わせは電話 03-1234-5678 まで", "03-1234-5678", "PHONE"),
    ("IBAN RU0204452560040702810412345678901 у банка", "RU0204452560040702810412345678901", "IBAN"),  # Russia's 33
    ("Customer service:\n(509) 747-4422\n", "(509) 747-4422", "PHONE"),  # "customer" alone names no number
    ("WhatsApp 00966599583476 now", "00966599583476", "PHONE"),  # a bare 00 run that is a number abroad
    ("To claim, call09050000327. T&C", "09050000327", "PHONE"),  # glued to the word before
    ("Urgent -call 09066649731from Landline.", "09066649731", "PHONE"),  # ... and to the word after
    ("U 447801259231 have a secret admirer", "447801259231", "PHONE"),  # a country code without its +  # Japanese: kana, so Japan's plan
    ("Netcollex Ltd 08700621170150p per msg", "08700621170", "PHONE"),  # run on into its price
    ("Stream 0871212025016", "08712120250", "PHONE"),  # ... and into an age
    ("send STOP 08452810071 16", "08452810071", "PHONE"),  # the age after a space
    ("send STOPCS 08717890890£1.50 per msg", "08717890890", "PHONE"),  # a currency sign before the next amount
    ("call 1-800-FLOWERS today", "1-800-FLOWERS", "PHONE"),  # a vanity number
    ("お電話は０３－１２３４－５６７８まで", "０３－１２３４－５６７８", "PHONE"),  # full-width digits
    ("お問い合わせ\n同窓会・基金担当\n096-3129", "096-3129", "PHONE"),  # no postal code under "inquiries"
    ("メール：ｉｎｆｏ＠ｅｘａｍｐｌｅ．ｊｐ まで", "ｉｎｆｏ＠ｅｘａｍｐｌｅ．ｊｐ", "EMAIL"),
    ("外交部12308热线全天候", "12308", "PHONE"),  # a public service number before a hotline word
    ("立即拨打110报警", "110", "PHONE"),  # ... and after a dialling word
    ("身份证号11010519491231002X，", "11010519491231002X", "CN_ID"),
    ("ring +86 138 1234 5678 now", "+86 138 1234 5678", "PHONE"),
    ("请拨打  0793—8177206。", "0793—8177206", "PHONE"),  # an em dash between area code and number
    ("Τηλ. (+30) 210 1234567 πρωί", "(+30) 210 1234567", "PHONE"),  # a country code in parentheses
    ("звоните 8 (495) 123-45-67 сегодня", "8 (495) 123-45-67", "PHONE"),  # Russia's trunk 8
    ("card 3512 3456 7890 1236 expired", "3512 3456 7890 1236", "CREDIT_CARD"),  # JCB's 35 block
    ("Tel. +44 20 7946 0958.", "+44 20 7946 0958", "PHONE"),
    ("Arcidiecézní charita (telefon: 068/5229380).", "068/5229380", "PHONE"),  # an area code and a slash
    ("Ring på tlf 50459989 i dag", "50459989", "PHONE"),  # a bare run after a Danish phone word
    ("ngaandibate pa0775 612 429.", "0775 612 429", "PHONE"),  # glued to Shona's "pa" (at)
    ("veita Markús Einarsson, markus@hostel.", "markus@hostel", "EMAIL"),  # a sentence cut before ".is"
    ("call (415) 555-0132 ext. 12", "(415) 555-0132 ext. 12", "PHONE"),
    ("server 8.8.8.8 answered", "8.8.8.8", "IP_ADDRESS"),
    ("DNS设置为8.8.4.4即可", "8.8.4.4", "IP_ADDRESS"),
    ("v6 2001:4860:4860::8888 too", "2001:4860:4860::8888", "IP_ADDRESS"),
    ("ask http://[2606:4700::1111]:8080/ first", "2606:4700::1111", "IP_ADDRESS"),  # brackets of a URL, not a slice
    ("call 555.1234 tonight", "555.1234", "PHONE"),  # a decimal's shape, after a call word
    ('"attendees": ["简·多伊@example.com"]', "简·多伊@example.com", "EMAIL"),  # other letters, after a quote
    ("match `John.Doe-123%+@example-domain.com`.", "John.Doe-123%+@example-domain.com", "EMAIL"),
    ("git clone https://bob:hunter2@git.example.com/x.git", "bob:hunter2", "URL_CREDENTIALS"),
    ("export KEY=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "SECRET"),
    ("token ghp_" + "a1B2" * 9 + " leaked", "ghp_" + "a1B2" * 9, "SECRET"),
    ("plate GNA906, call APD Dispatch on 911.", "911", "PHONE"),  # an emergency number, called
    ("па тэлефоне 102. Андрэй", "102", "PHONE"),  # ... by a Belarusian phone word
    ('"phone_number": "123 - 456 - 7890",', "123 - 456 - 7890", "PHONE"),  # spaced dashes after a phone word
    ("Free txt 44 7801259231, Do you", "44 7801259231", "PHONE"),  # a country code without its +, a space
    ("mera number hai 9506352935 and", "9506352935", "PHONE"),  # a bare run that is someone's number
    ("QlynnBV Help08700621170150p a msg", "08700621170", "PHONE"),  # glued to a word, run on into its price
    ("per week-stop sms-08718727870", "08718727870", "PHONE"),  # a dash after a phone word
    ("club reply ONCALL. mjzgroup. 08714342399.2stop reply", "08714342399", "PHONE"),  # a word glued to a full stop
    ("Puhelimitse tiedotusneuvojan tavoittaa numerosta 182 050.", "182 050", "PHONE"),  # six digits, called
    ('String input = "666444555\\n666-444-555\\n";', "666-444-555", "PHONE"),  # after an escaped line break
    ('"addresses:\\nnadia@d.co"', "nadia@d.co", "EMAIL"),  # ... which is no part of the address
    ("京东4006065500售后", "4006065500", "PHONE"),  # amid Chinese characters a bare run in the plan is one
    ("Liên hệ điện thoại 9042689330 gặp", "9042689330", "PHONE"),  # a bare run after a Vietnamese phone word
])
def test_each_entity_type(text: str, value: str, entity: str):
    spans = PiiDetector().find(text)
    assert [(text[s.start:s.end], s.entity) for s in spans] == [(value, entity)]


def test_numbers_written_together():
    """Two numbers joined by a slash; amid Chinese text, a local number after a full one takes its area code."""
    detector = PiiDetector()
    for text, values in (("info: 07946746291/07880867867 now", ["07946746291", "07880867867"]),
                         ("人民医院（027-85931736 61107879）需要支援", ["027-85931736", "61107879"])):
        assert [text[s.start:s.end] for s in detector.find(text)] == values, text


def test_what_is_not_pii():
    detector = PiiDetector()
    for text in ("Born on 2019-05-12 at 10:30", "It cost 12.500.000 euros in 1999 2004", "private 192.168.1.20 box",
                 "Apt. 722 20 40 rue Victor Hugo", "He lives at 5521 119 Countess Close", "loopback ::1 only",
                 "version 10.4.2 released", "ISBN 978-3-16-148410-0", "O.C.G.A. § 44-12-236",
                 "Science 360, 1465-1467", "serial TN-0000856166", "emprunté 40 000 000 SEK à la société",
                 "un total de USD 25 000 000 en", "cost € 1 250 000 in all", "罚款 2000 0000 元",
                 "exponent 000 0000 0001 in binary", "52.373180, 4.891166", "(Build 7369.2017)", "订单号：1442083355",
                 "分析师qq：3095664484", "the password was 12345678910", "going to be 33333233334 meters big",
                 "用了一张3000-150的券", "registration number is 2454806", "pi is 3.1415926535",
                 "from 500-1000 a day", "55555555555", "24 24 24 24 24", "?qid=1493823388&sr=8", "//@用户7305696018：",
                 "book 250-64847-1 in print", "Beverly Hills, CA 90210-4321", "routing 091269245 today",
                 "passport 45 19 917182 issued", "给他打100分", "考了100分，电话说", "call 100 people",
                 "Rekening BCA 0061947069 a/n Nizami", "[automerge]1574096160[/automerge]", "VAT No: GB 716 6328 31",
                 "ISSN: 2283-5474", "RT @s0922917350: hi", "visit www.07781482378.com", "txt DIS to 87121 18+ only", "〒100-0001 東京都千代田区", "横浜市栄区\n セネガル 447-4243", "регистрации СМИ ЭЛ №ФС77-67790, выдано", "Molha - 89259-565 - Caixa Postal", "护照 45 19 917182 签发", "barcode 0082640073354",
                 "70 Kaarikatu 32 Apt. 728 KAJAANI", "dates 12/05/2019/2020",
                 "联系方式:QQ:2811437428或者本层", "衣服，企鹅2223298821，有的", "诚心收 90 100 110 的刀剑", "220.234.64.* 15楼",
                 "1.4.5.8不能忍", "ardınca 913-919-943-cü illərdə", "xərcləri 2750546000 ABŞ dolları olub",
                 "DAB nr.: 860-7768 - Pris", "STC: Nr. 219-05-2006 Piegāde", "Elihu Yale ( 1649 1721 ).",
                 "Rua Sotto Mayor, 55 2710-628 Sintra", "（2700-1700万年前）地层", "Universia Knowledge@Wharton.",
                 "телевизор 1234567 в", "ดูโทรทัศน์ 1234567 ทุกวัน",
                 "charged 2250-1800=$<<2250-1800=450>>450", "left is 350000-210000 = <<350000-210000=140000>>",
                 "5200-80-80*3=4880", "sold 300.5849 gallons", "odds = l[1::2]", "l[::3] = sorted(l)",
                 "per Tenn. Code Ann. 39-17-1351 r.(1)", "= 3600000000000 + 62426244000 + 198472480000",
                 "94962 × 4694 = 43957319824.", "Thus, the result of 512088 × 137872 is 7105356608.",
                 "What is the result of 660-549695?", "doi:10.1053/j.ajkd.2010.06.011",
                 "256626720691 + 1646615806005 =\n\nThe result is:\n\n4212883012996",
                 "Here is a random 10-digit number: 4829301756.", "The answer is 6227020800.",  # no phone word
                 "id 42c46e28baf0fc617a07419286178c0a\nWhat", "X-Varnish: 1358167628 Age: 0",  # a hash, a header
                 "assert candidate('03-32-2011') == False", "The phone bill is 150*4 = 600",  # a date's shape, a sum
                 "leave your phone charging past 100%?", "Calculate 312 - 456 - 7890 please",
                 "AC 474 (Zoom: 5348583561)", "Jordan 4 Retro Remastered\n314254-003\nhttp",  # a meeting, a style code
                 "stop-08718727870 now", "call 12-05-19 the day", "Tel Aviv drew 120-150 people",  # no phone word
                 # before the dash; a date and a range after phone words; a six-digit number with no phone word
                 "call me.\nGroup 42-67-88", "the call came 3 days later from 42-67-88", "score 42-67-88 in all",
                 "together:\n\n472547338\n+960397912423686\n-------",
                 "6778576 - 84834150134 = -84827371558", "84834150134 - 6778576 = -84827371558",  # a subtraction
                 "input data 0x" + "a0123456789b" * 10):  # hex-encoded data, longer than the window either side  # too long for the Maldives' plan: a sum
        assert detector.find(text) == [], text
    assert phone_valid("0688 777 97 84") and not phone_valid("12345")


def test_numbering_plans_decide_phone_numbers_without_a_country_code():
    """A well-formed number that no plan has is left alone; a country that writes its trunk prefix needs it."""
    assert phone_in_plan("020 7946 0958", ("GB",)) and not phone_in_plan("20 7946 0958", ("GB",))
    assert phone_in_plan("13812345678", ("CN",)) and not phone_in_plan("329 11582", ("CN", "HK", "TW", "MO"))
    assert not phone_in_plan("63376888", ("CN",)) and phone_in_plan("63376888", ("CN",), after_call_word=True)
    detector = PiiDetector()
    for text in ("转发 711评论 329 11582今天09:10", "我的PRIORITY # 271 153 317", "没有办法想象失去你。11.18-11.23，在路上。",
                 "本人还有几张2000-100 1000-50 东券"):
        assert detector.find(text) == [], text
    text = "黄陂区人民医院（027-85931736 010-59222799）"  # two numbers side by side, each in the plan
    assert [text[s.start:s.end] for s in detector.find(text)] == ["027-85931736", "010-59222799"]
    spanish = "String input = \"666 44 45 55\";"  # a Spanish number in English text: found with the default plans
    assert [spanish[s.start:s.end] for s in detector.find(spanish)] == ["666 44 45 55"]
    assert PiiDetector(phone_regions=("US", "GB")).find(spanish) == []
    assert [(s.start, s.end) for s in PiiDetector(phone_regions=("US",)).find("call (958) 586-6286")] == [(5, 19)]


def test_a_documents_language_picks_the_numbering_plans():
    """A national number in a Swedish text is checked against Sweden's and Finland's plans, not 66 countries' (a
    library's "BN 445 24 52" fits one of them); English, unknown and unsure languages keep the configured plans."""
    detector = PiiDetector()
    text = "BN 445 24 52 Hawes, Annie, Vårt hus i Ligurien"
    assert detector.find(text, "sv") == [] and [text[s.start:s.end] for s in detector.find(text)] == ["445 24 52"]
    assert PiiDetector(phone_regions_by_language=False).find(text, "sv") != []
    assert language_regions("sv") == ("AX", "FI", "SE") and language_regions("sn") == ("ZW",)
    assert language_regions("tl") == ("PH",) and language_regions("xx") == ()  # lid.176's code; no such language
    assert detector.phone_regions_for("en") == detector.phone_regions == detector.phone_regions_for("xx")
    assert plan_language({"lang": "sv", "score": 0.92}) == "sv" and plan_language({"lang": "fr", "score": 0.27}) is None
    step = PiiScrubber(PiiConfig(), "/tmp")
    for score, kept in ((0.95, True), (0.3, False)):  # the langid step's label, when it is sure of it
        doc = Document(text=text, id="d", metadata={"langid": {"lang": "sv", "score": score}})
        step.apply(doc)
        assert ("445 24 52" in doc.text) is kept
    for text, lang, mobile in (("Ai cần thuê, gặp trực tiếp: Gia chủ Linh 904268933.", "vi", "904268933"),  # a mobile of
                               ("15. Andris Jānis Lankovskis 29156060, Siguldas nov.", "lv", "29156060")):  # the language's
        assert [text[s.start:s.end] for s in detector.find(text, lang)] == [mobile]  # own plan, phone word or not
        assert detector.find(text) == []  # not against 66 countries' plans: most runs of 8 to 10 digits are in one
    assert detector.find("Rezultāts 20132019, Siguldas", "lv") == []  # two years


def test_corpus_clean_reads_each_documents_language_from_langid(tmp_path: Path):
    """The pii step after the langid step: the same number is scrubbed in an English document (one of 66 plans has
    it) and kept in a Swedish one (neither Sweden's nor Finland's plan has it)."""
    texts = ["Boken finns på hyllan BN 445 24 52 i biblioteket, och den handlar om ett gammalt hus i Ligurien.",
             "The book is on shelf BN 445 24 52 in the library, and it tells of an old house in Liguria."]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    clean([str(path)], tmp_path / "out", load_config(), steps=["langid", "pii"])
    out = {r["id"]: r for r in read_jsonl(next((tmp_path / "out").glob("shard-*.jsonl.gz")))}
    assert out["d0"]["metadata"]["langid"]["lang"] == "sv" and "445 24 52" in out["d0"]["text"]
    assert out["d1"]["metadata"]["pii"] == {"PHONE": 1} and "BN <PHONE>" in out["d1"]["text"]


def test_phone_regions_are_checked_at_load():
    assert PiiConfig(phone_regions=["DE", "AT"]).phone_regions == ["DE", "AT"]
    with pytest.raises(ConfigError, match="unknown phone region 'UK'.*GB"):
        load_config(overrides={"pii": {"phone_regions": ["US", "UK"]}})
    with pytest.raises(ConfigError, match="quote it: 'NO'"):
        load_config(overrides={"pii": {"phone_regions": ["SE", False]}})  # what YAML makes of [SE, NO]
    with pytest.raises(ConfigError, match="at least one region"):
        load_config(overrides={"pii": {"phone_regions_han": []}})


def test_any_text_is_read_without_error():
    """Random runs of digits, separators, letters and Chinese around call words: the validators never raise (a
    bare "0099..." once made libphonenumber raise on an unknown country code)."""
    rng = random.Random(7)
    alphabet = "0123456789" * 4 + " -.+()/#xX@：电话拨打热线callTel"
    detector = PiiDetector()
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        for span in detector.find(text):
            assert 0 <= span.start < span.end <= len(text)
    assert detector.find("call 0099912345678 or 00012345") == []  # no such country codes


def test_scrubber_placeholders_pseudonyms_and_config():
    scrub = PiiScrubber(PiiConfig(), "/tmp").scrub
    assert scrub("mail a@b.org or c@d.org") == ("mail <EMAIL> or <EMAIL>", {"EMAIL": 2})
    pseudo = PiiScrubber(PiiConfig(replacement="pseudonym", salt="s3cret"), "/tmp").scrub
    text, _ = pseudo("a@b.org, a@b.org, c@d.org")
    first, second, third = text.split(", ")
    assert first == second != third and first.startswith("<EMAIL:")
    other_salt = PiiScrubber(PiiConfig(replacement="pseudonym", salt="other"), "/tmp").scrub
    assert other_salt("a@b.org")[0] != first
    with pytest.raises(ConfigError, match="salt"):
        load_config(overrides={"pii": {"replacement": "pseudonym"}})
    with pytest.raises(ConfigError, match="unknown PII entity 'NAME'"):
        load_config(overrides={"pii": {"entities": ["NAME"]}})


def test_pii_step_in_corpus_clean_never_writes_the_values_elsewhere(tmp_path: Path):
    secrets = ["jane.roe@example.org", "+44 20 7946 0958", "4539 5787 6362 1486", "DE89370400440532013000"]
    records = [{"id": f"d{i}", "text": f"Record {i}: contact {value} for details about the order."}
               for i, value in enumerate(secrets)]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = clean([str(path)], tmp_path / "out", load_config(), steps=["pii"])
    out = read_jsonl(next((tmp_path / "out").glob("shard-*.jsonl.gz")))
    assert [r["text"].split("contact ")[1].split(" ")[0] for r in out] == ["<EMAIL>", "<PHONE>", "<CREDIT_CARD>", "<IBAN>"]
    assert out[0]["metadata"]["pii"] == {"EMAIL": 1}
    assert result.stats["pii"] == {"documents": 4, "by_type": {"CREDIT_CARD": 1, "EMAIL": 1, "IBAN": 1, "PHONE": 1}}
    for f in (tmp_path / "out").rglob("*"):  # stats, report, logs, work files: none holds a value
        if f.is_file() and not f.name.startswith("shard-"):
            data = f.read_bytes()
            assert not any(v.encode() in data for v in secrets), f
