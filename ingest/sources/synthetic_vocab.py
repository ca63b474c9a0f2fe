"""Word lists for the synthetic shop: category tree names, product vocabulary, brand syllables.

Every department carries its own keywords, materials, sizes and uses, and every subcategory its
own keywords, so product text carries the category signal that a text encoder can pick up.
Lists are written as ``"|"``-separated strings to keep the file short.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADJECTIVES",
    "BRAND_CODAS",
    "BRAND_MIDDLES",
    "BRAND_ONSETS",
    "CLOSERS",
    "DEPARTMENTS",
    "FEATURE_OPENERS",
    "LINKS",
    "QUALIFIERS",
    "DepartmentVocab",
    "SubcategoryVocab",
]


@dataclass(frozen=True)
class SubcategoryVocab:
    """A second-level category: its name, its keywords and the names of its leaves."""

    name: str
    keywords: tuple[str, ...]
    leaves: tuple[str, ...]


@dataclass(frozen=True)
class DepartmentVocab:
    """A top-level category with the words its products are described with."""

    name: str
    keywords: tuple[str, ...]
    materials: tuple[str, ...]
    sizes: tuple[str, ...]
    uses: tuple[str, ...]
    subcategories: tuple[SubcategoryVocab, ...]


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split("|"))


def _sub(name: str, keywords: str, leaves: str) -> SubcategoryVocab:
    return SubcategoryVocab(name, tuple(keywords.split()), _split(leaves))


def _dept(
    name: str, keywords: str, materials: str, sizes: str, uses: str, *subs: SubcategoryVocab
) -> DepartmentVocab:
    return DepartmentVocab(
        name, _split(keywords), _split(materials), _split(sizes), _split(uses), subs
    )


#: Departments in the order the generator uses them (the first ``branching[0]`` are taken).
DEPARTMENTS: tuple[DepartmentVocab, ...] = (
    _dept(
        "Electrical",
        "voltage|current|insulated|wiring|circuit|amp|UL-listed",
        "copper|PVC|nylon|thermoplastic|aluminum",
        "15 A|20 A|120 V|240 V|12 AWG|14 AWG|50 ft|100 ft",
        "residential wiring|panel upgrades|commercial installs|troubleshooting circuits",
        _sub(
            "Wire & Cable",
            "conductor stranded jacket spool gauge",
            "Building Wire|Extension Cords|Cable Ties|Coaxial Cable|Wire Connectors",
        ),
        _sub(
            "Lighting",
            "lumens LED brightness dimmable bulb beam",
            "LED Bulbs|Work Lights|Flashlights|Light Fixtures|Emergency Lights",
        ),
        _sub(
            "Switches & Outlets",
            "toggle receptacle faceplate duplex rocker",
            "Wall Switches|Receptacles|Wall Plates|Dimmers|USB Outlets",
        ),
        _sub(
            "Circuit Protection",
            "breaker overload trip surge fault",
            "Circuit Breakers|Fuses|Surge Protectors|GFCI Devices",
        ),
        _sub(
            "Electrical Testers",
            "meter probe reading continuity digital",
            "Multimeters|Voltage Testers|Clamp Meters|Circuit Tracers",
        ),
    ),
    _dept(
        "Lab & Scientific",
        "laboratory|sterile|autoclavable|research|sample|calibrated|assay",
        "polypropylene|borosilicate glass|polystyrene|PTFE|stainless steel",
        "10 µL|200 µL|1000 µL|50 mL|250 mL|500 mL|1 L|Pack of 96",
        "cell culture|PCR workflows|sample preparation|analytical chemistry|teaching labs",
        _sub(
            "Pipettes",
            "pipetting volume aspirate dispense tip accuracy",
            "Pipette Tips|Micropipettes|Serological Pipettes|Transfer Pipettes|Pipette Controllers",
        ),
        _sub(
            "Labware",
            "graduated glassware spout rim volumetric",
            "Beakers|Erlenmeyer Flasks|Graduated Cylinders|Petri Dishes|Test Tubes",
        ),
        _sub(
            "Lab Equipment",
            "variable-speed benchtop digital timer heating",
            "Centrifuges|Hot Plates|Vortex Mixers|Lab Balances|Water Baths",
        ),
        _sub(
            "Lab Consumables",
            "disposable single-use lint-free microtube filter",
            "Filter Paper|Microcentrifuge Tubes|Weighing Boats|Lab Wipes|Cryovials",
        ),
        _sub(
            "Chemicals & Reagents",
            "reagent purity grade solution buffer molar",
            "Buffers|Solvents|Reagent Kits|Stains & Dyes",
        ),
    ),
    _dept(
        "Fasteners",
        "thread|zinc-plated|torque|fastening|hardware|head|shank",
        "stainless steel|zinc-plated steel|brass|nylon|galvanized steel",
        "M4|M6|M8|#8 x 1 in|1/4-20|3/8 in|Box of 100|Pack of 50",
        "woodworking|machinery assembly|deck building|sheet metal work|outdoor projects",
        _sub(
            "Screws",
            "phillips torx countersunk self-tapping pointed",
            "Wood Screws|Machine Screws|Sheet Metal Screws|Drywall Screws|Deck Screws",
        ),
        _sub(
            "Bolts",
            "hex grade shoulder carriage tensile",
            "Hex Bolts|Carriage Bolts|Eye Bolts|U-Bolts|Lag Bolts",
        ),
        _sub(
            "Nuts",
            "nut locking nylon-insert knurled coupling",
            "Hex Nuts|Lock Nuts|Wing Nuts|Coupling Nuts|Cap Nuts",
        ),
        _sub(
            "Washers",
            "washer flat spacer load-bearing split",
            "Flat Washers|Lock Washers|Fender Washers|Sealing Washers",
        ),
        _sub(
            "Anchors",
            "anchor masonry drywall expansion hollow-wall",
            "Drywall Anchors|Concrete Anchors|Toggle Bolts|Sleeve Anchors",
        ),
    ),
    _dept(
        "Tools",
        "ergonomic|jobsite|chrome-vanadium|cordless|precision|heavy-duty|grip",
        "chrome vanadium steel|hardened steel|fiberglass|aluminum|carbide",
        "6 in|8 in|10 in|12 in|18 V|20 V|25 ft|Set of 12",
        "carpentry|auto repair|metal fabrication|home renovation|maintenance crews",
        _sub(
            "Hand Tools",
            "handle jaw ratchet striking blade",
            "Screwdrivers|Wrenches|Pliers|Hammers|Utility Knives",
        ),
        _sub(
            "Power Tools",
            "brushless battery motor high-torque chuck",
            "Cordless Drills|Impact Drivers|Circular Saws|Angle Grinders|Jigsaws",
        ),
        _sub(
            "Measuring Tools",
            "measuring accuracy scale vial graduation",
            "Tape Measures|Levels|Calipers|Squares|Laser Distance Meters",
        ),
        _sub(
            "Tool Storage",
            "organizer drawers compartments latch portable",
            "Tool Boxes|Tool Bags|Tool Chests|Bit Organizers",
        ),
        _sub(
            "Drill Bits & Blades",
            "cutting bit shank teeth bore",
            "Twist Drill Bits|Hole Saws|Saw Blades|Driver Bits|Step Drill Bits",
        ),
    ),
    _dept(
        "Safety",
        "protective|ANSI-rated|comfort|compliance|PPE|certified|worker",
        "nitrile|polycarbonate|Kevlar|polyester|foam",
        "Small|Medium|Large|X-Large|One Size|Box of 100|Pair|Pack of 10",
        "laboratory safety|construction sites|chemical handling|warehouse work|welding shops",
        _sub(
            "Hand Protection",
            "glove powder-free cuff dexterity puncture",
            "Nitrile Gloves|Cut-Resistant Gloves|Lab Gloves|Work Gloves|Chemical-Resistant Gloves",
        ),
        _sub(
            "Eye & Face Protection",
            "lens anti-fog splash visor impact",
            "Safety Glasses|Goggles|Face Shields|Welding Helmets",
        ),
        _sub(
            "Respiratory Protection",
            "filter particulate N95 valve exhalation",
            "Dust Masks|Half-Face Respirators|Respirator Cartridges|Full-Face Respirators",
        ),
        _sub(
            "Hearing Protection",
            "decibel NRR noise earplug band",
            "Ear Plugs|Ear Muffs|Banded Hearing Protectors",
        ),
        _sub(
            "Workwear",
            "reflective visibility garment pockets flame-resistant",
            "Hi-Vis Vests|Lab Coats|Coveralls|Safety Boots|Hard Hats",
        ),
    ),
    _dept(
        "Adhesives & Sealants",
        "bond|adhesion|cure|waterproof|sealing|tack|viscosity",
        "silicone|polyurethane|acrylic|epoxy resin|rubber",
        "1 oz|4 oz|10 oz|1 in x 60 yd|2 in x 55 yd|Tube|Cartridge|Pack of 6",
        "bathroom sealing|bonding plastics|packaging|window glazing|thread locking",
        _sub(
            "Tapes",
            "roll backing adhesive-side tear residue-free",
            "Duct Tape|Electrical Tape|Masking Tape|Double-Sided Tape|Foil Tape",
        ),
        _sub(
            "Glues",
            "glue instant two-part clamp bonding",
            "Super Glue|Epoxy Adhesives|Wood Glue|Hot Melt Glue Sticks",
        ),
        _sub(
            "Sealants & Caulks",
            "caulk bead joint mildew-resistant paintable",
            "Silicone Sealant|Acrylic Caulk|Construction Adhesive|Fire-Rated Sealant",
        ),
        _sub(
            "Threadlockers & Gaskets",
            "threadlocker anaerobic gasket retaining vibration",
            "Threadlockers|Retaining Compounds|Gasket Makers|Thread Sealants",
        ),
    ),
    _dept(
        "Plumbing",
        "water|leak-proof|pressure|flow|drain|NPT|lead-free",
        "brass|copper|PVC|PEX|cast iron",
        "1/2 in|3/4 in|1 in|2 in|10 ft|25 ft|100 psi|1/3 HP",
        "bathroom remodels|water heater installs|irrigation|drain cleaning|basement flooding",
        _sub(
            "Pipe Fittings",
            "fitting elbow solder compression push-to-connect",
            "Elbows|Tees|Couplings|Unions|Adapters",
        ),
        _sub(
            "Valves",
            "valve shut-off handle quarter-turn backflow",
            "Ball Valves|Check Valves|Gate Valves|Angle Stop Valves",
        ),
        _sub(
            "Pipe & Tubing",
            "pipe tubing length flexible rigid",
            "PEX Tubing|Copper Pipe|PVC Pipe|Vinyl Tubing",
        ),
        _sub(
            "Plumbing Tools",
            "cutter plunger auger clog crimp",
            "Pipe Cutters|Pipe Wrenches|Plungers|Drain Augers|PEX Crimp Tools",
        ),
        _sub(
            "Pumps",
            "pump submersible gallons discharge impeller",
            "Sump Pumps|Utility Pumps|Transfer Pumps|Well Pumps",
        ),
    ),
    _dept(
        "Cleaning & Janitorial",
        "cleaning|janitorial|sanitary|absorbent|facility|hygiene|refill",
        "microfiber|cotton|polyethylene|cellulose|plastic",
        "1 gal|32 oz|13 gal|33 gal|Case of 12|Roll of 6|24 in|Pack of 200",
        "office buildings|restrooms|food service|hospital cleaning|shop floors",
        _sub(
            "Cleaning Chemicals",
            "disinfectant degreasing concentrate spray scent",
            "Degreasers|Disinfectants|Glass Cleaners|Hand Soap|Floor Cleaners",
        ),
        _sub(
            "Wipes & Towels",
            "towel wipe sheets absorbency lint",
            "Paper Towels|Shop Towels|Microfiber Cloths|Disinfecting Wipes",
        ),
        _sub(
            "Trash & Recycling",
            "liner can bin drawstring lid",
            "Trash Bags|Trash Cans|Recycling Bins|Can Liners",
        ),
        _sub(
            "Floor Care",
            "mop broom bristle bucket squeegee",
            "Mops|Brooms|Floor Scrubbers|Wet Floor Signs|Dust Pans",
        ),
    ),
    _dept(
        "Material Handling",
        "load|capacity|casters|warehouse|pallet|shipping|stackable",
        "steel|polypropylene|corrugated cardboard|aluminum|polyethylene",
        "500 lb|1000 lb|2 ton|48 in|12 x 12 x 12 in|Bundle of 25|18 in x 1500 ft|4-Shelf",
        "warehouse logistics|shipping departments|loading docks|inventory storage|"
        "moving heavy loads",
        _sub(
            "Carts & Trucks",
            "cart wheels handle platform dolly",
            "Hand Trucks|Utility Carts|Platform Trucks|Dollies",
        ),
        _sub(
            "Storage & Shelving",
            "shelf bin rack tier adjustable",
            "Shelving Units|Storage Bins|Pallet Racks|Wire Shelving",
        ),
        _sub(
            "Lifting & Rigging",
            "hoist sling rigging lifting chain",
            "Chain Hoists|Lifting Slings|Shackles|Floor Jacks",
        ),
        _sub(
            "Packaging & Shipping",
            "box wrap cushioning mailer carton",
            "Shipping Boxes|Bubble Wrap|Stretch Wrap|Poly Mailers|Packing Peanuts",
        ),
    ),
    _dept(
        "HVAC",
        "airflow|heating|cooling|ventilation|efficiency|MERV|CFM",
        "galvanized steel|fiberglass|aluminum|polyester media|ABS plastic",
        "16 x 20 x 1 in|20 x 25 x 1 in|6 in|8 in|24 V|1200 CFM|Pack of 4|25 ft",
        "furnace maintenance|air quality|duct installs|climate control|workshop ventilation",
        _sub(
            "Air Filters",
            "filtration dust pollen pleated MERV",
            "Furnace Filters|HEPA Filters|Filter Media Rolls|Carbon Filters",
        ),
        _sub(
            "Fans & Ventilation",
            "fan blades exhaust blower airflow",
            "Exhaust Fans|Floor Fans|Ceiling Fans|Inline Duct Fans",
        ),
        _sub(
            "Thermostats & Controls",
            "thermostat programmable schedule sensor Wi-Fi",
            "Programmable Thermostats|Smart Thermostats|Line Voltage Thermostats|Humidistats",
        ),
        _sub(
            "Ductwork",
            "duct register grille damper insulated",
            "Flexible Duct|Duct Fittings|Registers & Grilles|Duct Dampers",
        ),
    ),
)

#: Prefixes that tell apart generated siblings beyond the named ones ("Heavy-Duty Wood Screws").
QUALIFIERS: tuple[str, ...] = _split(
    "Standard|Heavy-Duty|Compact|Professional|Industrial|Economy|Premium|Mini|Metric|Specialty"
)

#: Generic product adjectives, mixed with the category keywords in titles.
ADJECTIVES: tuple[str, ...] = _split(
    "Durable|Premium|Professional|Compact|Reliable|Versatile|Lightweight|Rugged|Economy|Deluxe"
)

#: Openers of the feature sentence of a description ("Key features: sterile, tip and ...").
FEATURE_OPENERS: tuple[str, ...] = _split(
    "Key features:|Highlights:|Features|Notable for|Offers|Includes"
)

#: Phrases that link a product to a use ("Pipette Tips by Voltrex, ideal for cell culture.").
LINKS: tuple[str, ...] = _split(
    "designed for|ideal for|built for|made for|a popular choice for|well suited to"
)

#: Openers of the last, generic description sentence.
CLOSERS: tuple[str, ...] = _split(
    "Trusted for|Chosen by pros for|Rated highly for|Engineered for|A favourite for|Proven in"
)

#: Syllables that brand names are built from ("Vol" + "tr" + "ex").
BRAND_ONSETS: tuple[str, ...] = _split(
    "Vol|Kal|Tor|Mer|Zen|Bra|Cor|Dex|Fal|Gri|Hel|Jar|Lum|Nor|Pax|Qui|Ros|Sta|Tri|Ul|Ver|Wex|Xan|Yor"
)
BRAND_MIDDLES: tuple[str, ...] = _split("|tr|an|el|or|in|ar|ul|ic|om|et|ad")
BRAND_CODAS: tuple[str, ...] = _split("ex|on|ix|a|o|is|us|ite|ax|ra|co|tek|ia|um")
