#!/usr/bin/env python3
"""Generate a realistic graduation-list CSV, optionally with a share of invalid rows.

    python examples/generate.py --rows 1000 --seed 7 --out examples/graduates.csv
    python examples/generate.py --rows 100000 --invalid-fraction 0.01 --seed 1 --out /tmp/big.csv

Deterministic for a given seed. Wallets are derived from the student id
(``keccak256("blockproof-example:" + student_id)[-20:]``, EIP-55 checksummed), so
they are valid and reproducible (nobody holds their keys: they are examples).
"""
from __future__ import annotations

import argparse
import csv
import random
import sys

from eth_hash.auto import keccak

DEV_INSTITUTION = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # Anvil account 1
HEADER = ["student_id", "student_name", "student_wallet", "degree", "major", "graduation_date", "institution"]
FIRST = ("Ana", "José", "Zoë", "Björn", "Łukasz", "Søren", "Chloé", "Aoife", "Siobhán", "Mohammed", "Fatima",
         "Yuki", "Hiroshi", "Wei", "Mei", "Priya", "Arjun", "Oluwaseun", "Chidi", "Kwame", "Ama", "Olga",
         "Dmitri", "Ingrid", "Mateus", "Camila", "Thandiwe", "Ji-woo", "Seo-yeon", "Ahmet", "Elif", "Ngozi",
         "Tomás", "Renée", "François", "Emily", "James", "Sofia", "Lucas", "Aarav", "Leila", "Omar", "Hana",
         "Mariam", "Kenji", "Nadia", "Pedro", "Lena", "Anh", "Tariq", "Freya", "Matteo", "Ayşe", "Rahul")
LAST = ("García", "Müller", "O'Connor", "Nguyễn", "Kowalski", "Jensen", "Smith-Jones", "Okafor", "Mensah",
        "Ivanova", "Andersson", "Silva", "Dlamini", "Kim", "Park", "Yılmaz", "Adeyemi", "Rossi", "Dubois",
        "van der Berg", "Tanaka", "Suzuki", "Wang", "Li", "Chen", "Sharma", "Patel", "Haddad", "Khan",
        "Fernández", "Novak", "Horváth", "Murphy", "Nakamura", "Al-Sayed", "Costa", "Schmidt", "Brown",
        "Lefèvre", "Ó Briain", "Popescu", "Bianchi", "Moreau", "Eriksen", "Papadopoulos", "Mwangi")
NATIVE = ("王芳", "李伟", "佐藤 花子", "김민준", "Дмитрий Иванов", "محمد علي", "Αλέξανδρος Παπαδόπουλος",
          "אברהם כהן", "Nguyễn Thị Lan", "Ngozi Okonjo", "Siobhán Ní Bhriain")
DEGREES = ("Bachelor of Science", "Bachelor of Arts", "Master of Science", "Master of Arts",
           "Doctor of Philosophy", "Bachelor of Engineering", "Master of Business Administration",
           "Bachelor of Laws", "Master of Engineering", "Bachelor of Fine Arts")
MAJORS = ("Computer Science", "Mechanical Engineering", "Economics", "Biology", "Physics", "Mathematics",
          "History", "Psychology", "Chemistry", "Philosophy", "Political Science", "Nursing",
          "Electrical Engineering", "Architecture", "Law", "Finance", "Linguistics", "Environmental Science",
          "Data Science", "Medicine", "English Literature", "Sociology", "Civil Engineering", "Music")
DATES = ("2025-01-24", "2025-05-17", "2025-06-14", "2025-07-05", "2025-09-26", "2025-12-12",
         "2026-01-23", "2026-05-16", "2026-06-13", "2026-07-04", "2026-09-25")
INVALID_KINDS = ("bad_checksum", "zero_address", "short_address", "impossible_date", "ambiguous_date",
                 "missing_name", "long_name", "duplicate", "control_char", "unparseable_date",
                 "missing_wallet", "long_student_id")


def wallet_for(student_id: str) -> str:
    """EIP-55 address from keccak256 of the student id (checksum computed here, independently of producers)."""
    body = keccak(("blockproof-example:" + student_id).encode("utf-8"))[-20:].hex()
    digest = keccak(body.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(body, digest))


def valid_row(rng: random.Random, index: int, institution: str) -> list[str]:
    student_id = f"{rng.choice('SUMX')}{rng.choice((2021, 2022, 2023))}{index:06d}"
    if rng.random() < 0.05:
        name = rng.choice(NATIVE)
    else:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return [student_id, name, wallet_for(student_id), rng.choice(DEGREES), rng.choice(MAJORS),
            rng.choice(DATES), institution]


def spoil(row: list[str], kind: str, previous: list[str] | None) -> list[str]:
    row = list(row)
    if kind == "duplicate" and previous is not None:
        return list(previous)
    if kind in ("bad_checksum", "duplicate"):  # a duplicate with nothing before it becomes a bad checksum
        letters = [i for i, c in enumerate(row[2]) if c.isalpha() and i > 1]
        i = letters[0] if letters else 2
        row[2] = row[2][:i] + row[2][i].swapcase() + row[2][i + 1:]
        if row[2][2:] in (row[2][2:].lower(), row[2][2:].upper()):
            row[2] = "0x" + "Ab" + row[2][4:].lower()
    elif kind == "zero_address":
        row[2] = "0x" + "0" * 40
    elif kind == "short_address":
        row[2] = row[2][:-3]
    elif kind == "impossible_date":
        row[5] = "2025-02-30"
    elif kind == "ambiguous_date":
        row[5] = "06/07/2025"
    elif kind == "missing_name":
        row[1] = ""
    elif kind == "long_name":
        row[1] = "A" * 250
    elif kind == "control_char":
        row[1] = row[1] + "\x07"
    elif kind == "unparseable_date":
        row[5] = "next June"
    elif kind == "missing_wallet":
        row[2] = ""
    elif kind == "long_student_id":
        row[0] = row[0] * 10
    return row


def generate(rows: int, invalid_fraction: float, seed: int, out, institution: str = DEV_INSTITUTION) -> int:
    """Write the CSV to the text stream ``out``; returns the number of invalid rows written."""
    rng = random.Random(seed)
    invalid = set(rng.sample(range(rows), round(rows * invalid_fraction))) if invalid_fraction > 0 else set()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    previous = None
    for index in range(rows):
        row = valid_row(rng, index + 1, institution)
        if index in invalid:
            row = spoil(row, rng.choice(INVALID_KINDS), previous)
        writer.writerow(row)
        previous = row
    return len(invalid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--invalid-fraction", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--institution", default=DEV_INSTITUTION)
    parser.add_argument("--out", default="-", help="output path, or - for stdout")
    args = parser.parse_args(argv)
    if args.out == "-":
        bad = generate(args.rows, args.invalid_fraction, args.seed, sys.stdout, args.institution)
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            bad = generate(args.rows, args.invalid_fraction, args.seed, out, args.institution)
    print(f"{args.rows} rows ({bad} invalid) written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
