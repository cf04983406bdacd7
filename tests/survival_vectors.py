"""Shared test vectors of the survival score: `tests/data/survival_vectors.json`.

Each case is an (original, current) pair with the score `kept.survival_score` gives it.
The Python tests (tests/sdk/test_survival.py) and the browser tests
(tests/server/test_survival_browser.py, the port in `/sdk.js`) both check every case, so
the two scorers cannot drift. Regenerate after a change to the scorer or the cases:

    .venv/bin/python -m tests.survival_vectors

A test fails while the file is stale.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from kept import survival_score

PATH = Path(__file__).resolve().parent / "data" / "survival_vectors.json"

BASE = (
    "To export large files, open Settings, choose Export, and pick the streaming mode. "
    "The streaming mode writes rows as they are read, so memory stays flat. "
    "If the export still fails, check the disk space of the target folder."
)


def _pairs() -> list[tuple[str, str, str]]:
    """(name, original, current) for every case."""
    first, _, third = BASE.split(". ")
    cases: list[tuple[str, str, str]] = [
        ("identical", BASE, BASE),
        ("empty original", "", "anything"),
        ("empty current", BASE, ""),
        ("both empty", "", ""),
        ("whitespace only original", " \t\n\u3000", "x"),
        ("added around", BASE, "Dear customer,\n\n" + BASE + "\n\nBest regards"),
        ("case and whitespace runs", BASE, BASE.upper().replace(" ", "\n \t  \r\n")),
        ("one edited word", BASE, BASE.replace("mode writes", "mode stores")),
        ("sentence rewritten", BASE, f"{first}. The export now streams by default. {third}"),
        ("sentences moved", BASE, ". ".join([third, first, "x"])),
        ("deleted middle", BASE, first + ". " + third),
        ("scattered common words", BASE, "the the the export mode, the folder. so, flat"),
        ("repeated kept once", "yes yes yes yes yes yes", "yes yes yes"),
        ("one token", "Hi", "hi there"),
        ("two tokens", "Hi!", "well hi ! you"),
        ("punctuation runs", "Wait... what?!? (really) -- yes.", "wait...what?!?(really)--yes."),
        ("underscore and digits", "call do_it_now() with 3.14159 and x2", "DO_IT_NOW() 3.14159"),
        ("german sharp s", "Die Straße ist groß und weiß.", "DIE STRASSE IST GROSS UND WEISS."),
        ("greek final sigma", "ΟΔΥΣΣΕΥΣ ΚΑΙ Ο ΚΥΚΛΩΨ", "οδυσσευς και ο κυκλωψ"),
        ("turkish dotted I", "İstanbul İzmir Iğdır", "i̇stanbul i̇zmir ığdır"),
        ("ligatures", "ﬁne ﬂour ﬀ", "fine flour ff"),
        ("cherokee", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ ꮳꮃꭹ", "ꮳꮃꭹ ꭶꮼꮒꭿꮝꮧ ᏣᎳᎩ"),
        ("cyrillic", "Привет, как дела? Всё хорошо.", "привет, как дела? всё плохо."),
        ("arabic", "مرحبا بك في عالم البرمجة الحديثة", "مرحبا بك في عالم البرمجة"),
        ("hebrew", "שלום עולם, מה שלומך היום?", "שלום עולם, מה שלומך?"),
        ("hindi combining marks", "हिन्दी में लिखा हुआ पाठ यहाँ है।", "हिन्दी में लिखा पाठ यहाँ है।"),
        ("thai no spaces", "ภาษาไทยไม่มีช่องว่าง ระหว่างคำ", "ภาษาไทยไม่มีช่องว่าง"),
        ("chinese", "我们今天去公园散步，天气很好。", "我们今天去公园散步，天气不好。"),
        (
            "japanese mixed",
            "東京は晴れです。カタカナとひらがな、漢字。",
            "東京は晴れです。カタカナ",
        ),
        ("korean", "안녕하세요 오늘 날씨가 좋네요", "안녕하세요 오늘 날씨가 나쁘네요"),
        ("emoji", "Great job 🎉🎉 see you 👋🏽 soon", "great job 🎉🎉 see you soon"),
        ("emoji zwj family", "family: 👨‍👩‍👧‍👦 and flag 🇫🇷 ok", "FAMILY: 👨‍👩‍👧‍👦 AND FLAG 🇫🇷 OK"),
        ("astral letters", "𝐀𝐁𝐂 𐐀𐐁 deseret 𝟙𝟚𝟛", "𝐀𝐁𝐂 𐐨𐐩 DESERET 𝟙𝟚𝟛"),
        ("fullwidth", "ＡＢＣ　ｄｅｆ　１２３", "ａｂｃ ｄｅｆ １２３"),
        ("numbers of other scripts", "٣ ٤ ٥ Ⅻ ½ ² ①", "٣ ٤ ٥ ⅻ ½ ² ①"),
        ("python-only whitespace", "one\x1ctwo\x1dthree\x85four", "one two three four"),
        ("js-only whitespace", "one\ufefftwo three", "one two three"),
        ("zero width", "zero\u200bwidth\u200cjoin\u200dhere", "zero width join here"),
        ("control chars", "a\x00b\x07c d\x7fe", "a b c d e"),
        ("nbsp and thin spaces", "1\u00a0000\u2009km\u202fnow", "1 000 km now"),
        ("lone surrogate-free astral punct", "𝄞 music 𝄢 notes", "music notes 𝄞"),
        ("combining accents", "cafe\u0301 nai\u0308ve", "café naïve"),
        ("title case digraph", "ǅemal ǈubljana", "ǆemal ǉubljana"),
        ("micro and kelvin", "5 µm at 300 K (Kelvin sign)", "5 μm at 300 k (kelvin sign)"),
    ]
    rng = random.Random(17)
    words = BASE.split()
    long_original = " ".join(rng.choice(words) for _ in range(10_000))
    edited = long_original.split(" ")
    for i in range(0, len(edited), 97):
        edited[i] = "changed"
    del edited[2500:3500]
    cases.append(("very long, edited", long_original, " ".join(edited)))
    half = len(long_original) // 2
    swapped = long_original[half:] + " " + long_original[:half]
    cases.append(("very long, untouched, halves swapped", long_original, swapped))
    mixed = "Ünïcödé 🎉 текст 文字 عربى " * 400
    cases.append(("long mixed scripts", mixed, mixed.replace("текст", "слово", 150)))
    return cases


def build() -> dict[str, Any]:
    cases = [
        {"name": name, "original": original, "current": current,
         "score": survival_score(original, current)}
        for name, original, current in _pairs()
    ]  # fmt: skip
    for n in (1, 2, 5):
        for name, original, current in _pairs()[5:12]:
            score = survival_score(original, current, n)
            cases.append({"name": f"{name}, n={n}", "original": original, "current": current,
                          "n": n, "score": score})  # fmt: skip
    return {"generated_by": "python -m tests.survival_vectors", "cases": cases}


def render() -> str:
    return json.dumps(build(), ensure_ascii=True, indent=1) + "\n"


def main() -> None:
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATH} ({len(build()['cases'])} cases)")


if __name__ == "__main__":
    main()
