"""The numbering plan the decks are cut from: countries, their prefixes and number lengths.

One row per country code: its name, the length of a national number, area prefixes with their
destination names and mobile prefixes. Rare destinations (only some decks carry them) are
priced higher. Mobile operators name some deeper mobile destinations.
"""

from __future__ import annotations

from dataclasses import dataclass

OPERATORS: tuple[str, ...] = (
    "Vodafone",
    "Orange",
    "MTN",
    "Airtel",
    "T-Mobile",
    "Telef\u00f3nica",
    "Etisalat",
    "Kyivstar",
    "China Mobile",
    "Jio",
    "Safaricom",
    "KPN",
)


@dataclass(frozen=True)
class Country:
    """One country code: its areas and mobile prefixes as ``(suffix after cc, destination)``."""

    cc: str
    name: str
    national_len: int
    areas: tuple[tuple[str, str], ...]
    mobile: tuple[str, ...]
    rare: bool = False


# cc | name | national number length | area prefixes (after the cc) and names | mobile prefixes
# A trailing "*" on the name marks a destination only some decks carry.
_COUNTRY_TABLE = """
1|United States/Canada|10|201 New Jersey;202 Washington DC;212 New York;213 Los Angeles;\
305 Miami;312 Chicago;415 San Francisco;416 Toronto;604 Vancouver;646 New York;713 Houston|
44|United Kingdom|10|1 Geographic;20 London;113 Leeds;117 Bristol;121 Birmingham;\
131 Edinburgh;161 Manchester|7 74 75 77 770 7700 78 79
49|Germany|11|30 Berlin;40 Hamburg;69 Frankfurt;89 Munich;221 Cologne|\
15 151 152 157 16 160 17 170 171 176
33|France|9|1 Paris;4 South-East;491 Marseille|6 61 62 7 75
34|Spain|9|91 Madrid;93 Barcelona;95 Seville|6 60 61 7 71
39|Italy|10|02 Milan;06 Rome;011 Turin|3 32 33 34 347 35 36 39
31|Netherlands|9|10 Rotterdam;20 Amsterdam;70 The Hague|6 61 62 65
7|Russia|10|495 Moscow;499 Moscow;812 St Petersburg;7 =Kazakhstan;701 =Kazakhstan Mobile;\
727 =Kazakhstan - Almaty|9 91 92 95 98
86|China|11|10 Beijing;20 Guangzhou;21 Shanghai|13 135 138 15 18 186
91|India|10|11 Delhi;22 Mumbai;80 Bangalore|7 70 8 9 98 99
234|Nigeria|10|1 Lagos;9 Abuja|70 80 803 806 81 90
254|Kenya|9|20 Nairobi;41 Mombasa|7 70 71 72 11
380|Ukraine|9|32 Lviv;44 Kyiv|50 63 66 67 68 73 93 97
971|United Arab Emirates|9|2 Abu Dhabi;4 Dubai|5 50 52 55 56
61|Australia|9|2 Sydney;3 Melbourne|4 40 41 43
55|Brazil|11|11 S\u00e3o Paulo;21 Rio de Janeiro|119 219
81|Japan|10|3 Tokyo;6 Osaka|70 80 90
27|South Africa|9|11 Johannesburg;21 Cape Town|6 7 72 8 82
48|Poland|9|22 Warsaw|5 50 6 60 7 79
90|Turkey|10|212 Istanbul;312 Ankara|5 53 54
225|C\u00f4te d'Ivoire*|10|27 Abidjan|0 01 05 07
243|Congo, Dem. Rep.*|9|12 Kinshasa|8 81 82 89 9 97
880|Bangladesh*|10|2 Dhaka|1 17 18 19
63|Philippines*|10|2 Manila|9 91 917 92
52|Mexico*|10|33 Guadalajara;55 Mexico City|1
53|Cuba*|8|7 Havana|5
"""


def _parse_countries(table: str) -> tuple[Country, ...]:
    countries: list[Country] = []
    for line in table.strip().splitlines():
        cc, name, length, areas, mobile = line.split("|")
        rare = name.endswith("*")
        name = name.removesuffix("*")
        area_list: list[tuple[str, str]] = []
        for item in filter(None, areas.split(";")):
            suffix, label = item.split(" ", 1)
            # "=Name" is a destination of its own under the cc (Kazakhstan under +7).
            destination = label[1:] if label.startswith("=") else f"{name} - {label}"
            area_list.append((suffix, destination))
        countries.append(
            Country(cc, name, int(length), tuple(area_list), tuple(mobile.split()), rare)
        )
    return tuple(countries)


COUNTRIES: tuple[Country, ...] = _parse_countries(_COUNTRY_TABLE)
