"""RFC 8785 canonical JSON, the credential document and its fingerprint."""
import json
import struct

import pandas as pd
import pytest
import rfc8785
from hypothesis import given, settings, strategies as st

from producers.canonical import canonical_json, credential_document, fingerprint
from producers.validation import _documents

INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
WALLET = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"

# RFC 8785 appendix B: IEEE-754 bit patterns and their canonical serialisation.
NUMBER_VECTORS = {
    "0000000000000000": "0", "8000000000000000": "0", "0000000000000001": "5e-324",
    "8000000000000001": "-5e-324", "7fefffffffffffff": "1.7976931348623157e+308",
    "ffefffffffffffff": "-1.7976931348623157e+308", "4340000000000000": "9007199254740992",
    "c340000000000000": "-9007199254740992", "4430000000000000": "295147905179352830000",
    "44b52d02c7e14af5": "9.999999999999997e+22", "44b52d02c7e14af6": "1e+23",
    "44b52d02c7e14af7": "1.0000000000000001e+23", "444b1ae4d6e2ef4e": "999999999999999700000",
    "444b1ae4d6e2ef4f": "999999999999999900000", "444b1ae4d6e2ef50": "1e+21",
    "3eb0c6f7a0b5ed8c": "9.999999999999997e-7", "3eb0c6f7a0b5ed8d": "0.000001",
    "41b3de4355555553": "333333333.3333332", "41b3de4355555554": "333333333.33333325",
    "41b3de4355555555": "333333333.3333333", "41b3de4355555556": "333333333.3333334",
    "41b3de4355555557": "333333333.33333343", "becbf647612f3696": "-0.0000033333333333333333",
    "43143ff3c1cb0959": "1424953923781206.2",
}


@pytest.mark.parametrize("bits,expected", NUMBER_VECTORS.items())
def test_rfc8785_numbers(bits, expected):
    assert canonical_json(struct.unpack(">d", bytes.fromhex(bits))[0]) == expected.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinity_are_rejected(bits):
    with pytest.raises(ValueError):
        canonical_json(struct.unpack(">d", bytes.fromhex(bits))[0])


def test_rfc8785_example_object():
    text = ('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
            ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
            ' "literals": [null, true, false]}')
    expected = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
                '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}')
    assert canonical_json(json.loads(text)) == expected.encode("utf-8")


def test_rfc8785_key_sorting_by_utf16_code_units():
    obj = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
           "1": "One", "\U0001F600": "Emoji: Grinning Face", "\u0080": "Control",
           "\u00f6": "Latin Small Letter O With Diaeresis"}
    keys = list(json.loads(canonical_json(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001F600", "\ufb33"]


def test_string_escaping_is_minimal():
    assert canonical_json("a\"b\\c/\b\f\n\r\t\x01\x1f\x7f é \u2028 😀") == (
        '"a\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f é \u2028 😀"'.encode("utf-8"))


def test_unrepresentable_values_are_rejected():
    with pytest.raises(ValueError):
        canonical_json(2**53 + 1)  # not a double
    assert canonical_json(2**60) == b"1152921504606847000"  # as JavaScript prints it
    with pytest.raises(ValueError):
        canonical_json("\ud800")  # lone surrogate
    with pytest.raises(TypeError):
        canonical_json({1: "x"})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), children, max_size=5),
    max_leaves=20,
)


def _parse(data: bytes):
    """Parse JSON numbers as RFC 8785 sees them: IEEE doubles (small integers stay ints)."""
    return json.loads(data.decode("utf-8"), parse_int=lambda s: int(s) if abs(int(s)) <= 2**53 else float(s))


@given(json_values)
def test_canonical_json_parses_back_to_the_same_object(value):
    out = canonical_json(value)
    assert _parse(out) == value
    assert canonical_json(_parse(out)) == out  # idempotent


SAFE_INTEGER = 2**53 - 1  # the package's integer domain; canonical_json also takes larger integers that are doubles
any_double = st.integers(0, 2**64 - 1).map(lambda bits: struct.unpack(">d", bits.to_bytes(8, "big"))[0]).filter(
    lambda x: x == x and abs(x) != float("inf"))  # every bit pattern: subnormals, extremes, long shortest forms
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)))  # any code point but a lone surrogate
any_json = st.recursive(
    st.none() | st.booleans() | st.integers(-SAFE_INTEGER, SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False) | any_double | unicode_text,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(unicode_text, children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=1000)
@given(any_json)
def test_canonical_json_gives_the_same_bytes_as_the_rfc8785_package(value):
    assert canonical_json(value) == rfc8785.dumps(value)


def test_golden_document_and_fingerprint():
    doc = credential_document(
        institution=INSTITUTION.lower(), student_id="00123", student_name="Zoë O'Connor",
        student_wallet=WALLET.lower(), degree="Bachelor of Science", major="Computer Science",
        graduation_date="2025-06-14")
    assert canonical_json(doc).decode() == (
        '{"degree":"Bachelor of Science","graduationDate":"2025-06-14",'
        '"institution":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","major":"Computer Science",'
        '"studentId":"00123","studentName":"Zoë O\'Connor",'
        '"studentWallet":"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC","type":"BlockProofCredential","version":1}')
    # cross-checked with JavaScript (JSON.stringify with sorted keys + js-sha3 keccak256)
    assert fingerprint(doc) == "0x2da47b804bd157211acb1b79114176b0f1954fc9505c6e20fe8384b4c5ea1d29"
    assert "expiresAt" not in doc
    with_expiry = credential_document(**{**_fields(doc), "expires_at": 1893456000})
    assert with_expiry["expiresAt"] == 1893456000
    assert fingerprint(with_expiry) == "0x203e21155e257953bbba3d0710bfb9845bb2186f255a30a4908aeba00b3003f3"


def test_document_rejects_non_iso_date_and_bad_address():
    with pytest.raises(ValueError):
        credential_document(institution=INSTITUTION, student_id="1", student_name="A", student_wallet=WALLET,
                            degree="BSc", major="X", graduation_date="14.06.2025")
    with pytest.raises(ValueError):
        credential_document(institution="0x123", student_id="1", student_name="A", student_wallet=WALLET,
                            degree="BSc", major="X", graduation_date="2025-06-14")


def _fields(doc):
    return {"institution": doc["institution"], "student_id": doc["studentId"], "student_name": doc["studentName"],
            "student_wallet": doc["studentWallet"], "degree": doc["degree"], "major": doc["major"],
            "graduation_date": doc["graduationDate"], "expires_at": doc.get("expiresAt", 0)}


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)
wallets = st.binary(min_size=20, max_size=20).filter(any).map(lambda b: "0x" + b.hex())
documents = st.builds(
    lambda **kw: credential_document(**kw), institution=wallets, student_id=text, student_name=text,
    student_wallet=wallets, degree=text, major=text,
    graduation_date=st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}"),
    expires_at=st.one_of(st.just(0), st.integers(1, 2**40)))


@given(documents, st.randoms(use_true_random=False), st.sampled_from([None, 0, 2, "\t"]))
def test_fingerprint_is_stable_under_key_order_and_whitespace(doc, rnd, indent):
    keys = list(doc)
    rnd.shuffle(keys)
    reparsed = json.loads(json.dumps({k: doc[k] for k in keys}, indent=indent, ensure_ascii=rnd.random() < 0.5))
    assert fingerprint(reparsed) == fingerprint(doc)
    assert len(fingerprint(doc)) == 66 and fingerprint(doc).startswith("0x")


@given(documents, st.data())
def test_any_field_change_changes_the_fingerprint(doc, data):
    fields = _fields(doc)
    name = data.draw(st.sampled_from(sorted(fields)))
    strategy = {"institution": wallets, "student_wallet": wallets, "expires_at": st.integers(0, 2**40),
                "graduation_date": st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}")}.get(name, text)
    new = data.draw(strategy.filter(lambda v: str(v).lower() != str(fields[name]).lower()))
    assert fingerprint(credential_document(**{**fields, name: new})) != fingerprint(doc)


@settings(max_examples=200)
@given(st.lists(documents, min_size=1, max_size=5))
def test_column_wise_documents_equal_canonical_json(docs):
    frame = pd.DataFrame([_fields(d) for d in docs])
    frame["expires_at"] = frame["expires_at"].astype("int64")
    built = _documents(frame).tolist()
    assert built == [rfc8785.dumps(d).decode("utf-8") for d in docs]


def test_the_fast_keccak_used_for_fingerprints_agrees_with_eth_hash():
    from eth_hash.auto import keccak as reference

    from producers.hashing import keccak

    for data in (b"", b"abc", "Søren Lefèvre".encode(), bytes(range(256)) * 3):
        assert keccak(data) == reference(data)
