"""Which UK nation a local authority is in, from its name. Pure data, no I/O.

Used by the form-v2 `outside_england` condition (prompt `jurisdiction`): the England form's
law (Children Act 1989 ss17/47, Working Together) may not apply to a child living in Wales,
Scotland or Northern Ireland. Names are matched as whole words after normalising case and
punctuation, so "Cardiff Council" and "City of Edinburgh Council" are both recognised.
Anything not recognised counts as England: the prompt is a reminder, not a block.
"""

from __future__ import annotations

import re

_NATION_WORDS = (
    "scotland",
    "scottish",
    "wales",
    "welsh",
    "cymru",
    "northern ireland",
    "isle of man",
    "jersey",
    "guernsey",
)

# Local authorities of Scotland (32), Wales (22) and Northern Ireland (11).
_AUTHORITIES = (
    # Scotland
    "aberdeen city",
    "aberdeenshire",
    "angus",
    "argyll and bute",
    "clackmannanshire",
    "dumfries and galloway",
    "dundee city",
    "east ayrshire",
    "east dunbartonshire",
    "east lothian",
    "east renfrewshire",
    "city of edinburgh",
    "edinburgh",
    "na h eileanan siar",
    "comhairle nan eilean siar",
    "falkirk",
    "fife",
    "glasgow",
    "highland",
    "inverclyde",
    "midlothian",
    "moray",
    "north ayrshire",
    "north lanarkshire",
    "orkney islands",
    "perth and kinross",
    "renfrewshire",
    "scottish borders",
    "shetland islands",
    "south ayrshire",
    "south lanarkshire",
    "stirling",
    "west dunbartonshire",
    "west lothian",
    # Wales
    "blaenau gwent",
    "bridgend",
    "caerphilly",
    "cardiff",
    "carmarthenshire",
    "ceredigion",
    "conwy",
    "denbighshire",
    "flintshire",
    "gwynedd",
    "isle of anglesey",
    "anglesey",
    "merthyr tydfil",
    "monmouthshire",
    "neath port talbot",
    "newport city",
    "pembrokeshire",
    "powys",
    "rhondda cynon taf",
    "swansea",
    "torfaen",
    "vale of glamorgan",
    "wrexham",
    # Northern Ireland
    "antrim and newtownabbey",
    "ards and north down",
    "armagh city banbridge and craigavon",
    "belfast",
    "causeway coast and glens",
    "derry city and strabane",
    "fermanagh and omagh",
    "lisburn and castlereagh",
    "mid and east antrim",
    "mid ulster",
    "newry mourne and down",
)

_FILLER = frozenset(
    {"council", "city", "borough", "county", "metropolitan", "district", "the", "royal", "of"}
)


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.casefold()).split())


def outside_england(name: str) -> bool:
    """True when `name` names a local authority (or nation) outside England."""
    text = f" {_words(name)} "
    if text.strip() == "":
        return False
    return any(f" {phrase} " in text for phrase in _NATION_WORDS + _AUTHORITIES)


def same_authority(a: str, b: str) -> bool:
    """True when two local-authority names mean the same council ("Leeds" = "Leeds City Council")."""

    def key(text: str) -> str:
        words = _words(text).split()
        kept = [w for w in words if w not in _FILLER]
        return " ".join(kept or words)

    return key(a) == key(b)
