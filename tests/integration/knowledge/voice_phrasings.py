"""The phrasings the voice thresholds are calibrated on (voice_calibration.py): a household's
notes, the tenant's tools, questions with and without an answer in the notes, commands and
chit-chat, each in the ``tune`` or the ``held_out`` split; and question pairs for the cache."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from konak.hub.knowledge.routing import ToolInfo

NOTES: Mapping[str, str] = {
    "wifi": "The guest wifi network is Konak-Guest and its password is blue-otter-42. The "
    "main network is for our own devices only.",
    "bins": "The bins are collected on Tuesday mornings. Put the green recycling bin out every "
    "second week and the black one every week.",
    "boiler": "The boiler is in the utility room behind the washing machine. If the pressure "
    "drops below one bar, open the grey valve underneath until the needle reaches 1.5.",
    "vet": "Our vet is Dr. Aydin at Moda Veterinary Clinic, phone 0216 555 0142. Luna the cat "
    "gets her vaccinations every March.",
    "key": "The spare house key is with our neighbour Selin at number 14. There is no key "
    "under the mat.",
    "dentist": "Mert has a dentist appointment on Thursday the 12th at 4 pm at the clinic on "
    "Bagdat Avenue.",
    "plants": "Water the fig tree on the balcony twice a week in summer and once a week in "
    "winter. The orchids only need an ice cube on Sundays.",
    "alarm": "The alarm panel is by the front door. To disarm it, enter 4711 and press the "
    "check key within thirty seconds.",
    "soup": "Grandma's lentil soup: fry an onion and a carrot in butter, add red lentils, a "
    "spoon of tomato paste and water, simmer for 25 minutes, blend, and finish with mint and "
    "paprika butter.",
    "internet": "Our internet provider is TurkNet. Customer support is on 0850 288 8080 and "
    "the contract number is TN-558213.",
    "parking": "Visitors can park in space 7 in the underground garage. The garage gate code "
    "is 2580.",
    "fuses": "The fuse box is in the hallway cupboard above the shoes. The switch labelled K3 "
    "is the kitchen.",
    "school": "School starts at 8:30 and ends at 15:40. On Wednesdays the children finish "
    "early, at 12:30.",
    "cleaner": "Our cleaner Ayse comes every Friday at 10 am. She has her own key.",
    "car": "The car's next service is due in May at 60,000 kilometres. Tyre pressure is 2.3 "
    "bar at the front and 2.1 at the back.",
    "doctor": "The family doctor is Dr. Kaya. The practice opens at 9 and appointments are "
    "booked by phone on 0216 444 1234.",
}

TOOLS: tuple[ToolInfo, ...] = (
    ToolInfo(
        "fleet",
        "list_devices",
        "List the tenant's devices (optionally of one area) with their state.",
        read_only=True,
    ),
    ToolInfo(
        "fleet",
        "get_device_status",
        "A device's status, identity and newest telemetry.",
        required=("device",),
        read_only=True,
    ),
    ToolInfo(
        "fleet",
        "announce",
        "Speak ``text`` on one device, or on every device of an area.",
        required=("text",),
    ),
    ToolInfo("home", "HassTurnOn", "Turn on a light or switch by name, or every one in an area."),
    ToolInfo("home", "HassTurnOff", "Turn off a light or switch by name, or every one in an area."),
    ToolInfo(
        "home", "HassLightSet", "Set a light's brightness (percent) and/or color by name or area."
    ),
    ToolInfo("home", "HassGetState", "Say whether a light or switch is on or off.", read_only=True),
    ToolInfo(
        "media",
        "play_music",
        "Play music: a song, an artist, an album or a radio station.",
        required=("query",),
    ),
    ToolInfo(
        "timers",
        "start_timer",
        "Start a countdown timer for a number of minutes.",
        required=("minutes",),
    ),
)

Kind = Literal["passage", "tool", "none"]
Split = Literal["tune", "held_out"]


@dataclass(frozen=True, slots=True)
class Case:
    """A phrasing and what it should get: a note's passage, a tool, or nothing."""

    text: str
    kind: Kind
    target: str  # the note's id, the tool's name, or "" (none)
    group: str  # answerable, unanswerable, command, chitchat
    split: Split


def _cases(group: str, kind: Kind, rows: Sequence[tuple[str, str]]) -> list[Case]:
    # Alternate the splits so each note and tool has phrasings on both sides.
    return [
        Case(text, kind, target, group, "tune" if n % 2 == 0 else "held_out")
        for n, (target, text) in enumerate(rows)
    ]


ANSWERABLE = _cases(
    "answerable",
    "passage",
    [
        ("wifi", "what is the guest wifi password"),
        ("wifi", "how do visitors get on the internet"),
        ("wifi", "what's the name of the guest network"),
        ("bins", "when are the bins collected"),
        ("bins", "which day is rubbish day"),
        ("bins", "is it a recycling week"),
        ("boiler", "where is the boiler"),
        ("boiler", "the heating pressure is low what do I do"),
        ("boiler", "how do I top up the boiler pressure"),
        ("vet", "what's the vet's phone number"),
        ("vet", "when does the cat need her vaccinations"),
        ("vet", "who is our vet"),
        ("key", "where is the spare key"),
        ("key", "who has a key to our house"),
        ("key", "is there a key under the doormat"),
        ("dentist", "when is Mert's dentist appointment"),
        ("dentist", "what time is the dentist on Thursday"),
        ("dentist", "where is the dental clinic"),
        ("plants", "how often should I water the fig tree"),
        ("plants", "what do the orchids need"),
        ("plants", "when do the plants on the balcony get water"),
        ("alarm", "how do I turn off the alarm"),
        ("alarm", "what is the alarm code"),
        ("alarm", "where is the alarm panel"),
        ("soup", "how do you make grandma's lentil soup"),
        ("soup", "what goes into the lentil soup"),
        ("soup", "how long does the soup simmer"),
        ("internet", "what's the number for internet support"),
        ("internet", "who is our internet provider"),
        ("internet", "what is our broadband contract number"),
        ("parking", "where can guests park"),
        ("parking", "what's the code for the garage gate"),
        ("parking", "which parking space is for visitors"),
        ("fuses", "where is the fuse box"),
        ("fuses", "which fuse is the kitchen"),
        ("fuses", "the power went out in the kitchen where are the breakers"),
        ("school", "what time does school start"),
        ("school", "when do the kids finish on Wednesday"),
        ("school", "what time is school pickup"),
        ("cleaner", "when does the cleaner come"),
        ("cleaner", "does Ayse have a key"),
        ("cleaner", "what day is the cleaning lady here"),
        ("car", "when is the car due for a service"),
        ("car", "what should the tyre pressure be"),
        ("car", "how much air goes in the front tyres"),
        ("doctor", "who is our family doctor"),
        ("doctor", "how do I book a doctor's appointment"),
        ("doctor", "what time does the doctor's practice open"),
    ],
)

UNANSWERABLE = _cases(
    "unanswerable",
    "none",
    [
        ("", "what is the neighbour's wifi password"),
        ("", "when is my sister's birthday"),
        ("", "what's the dentist's phone number"),
        ("", "when is the car insurance due"),
        ("", "what is the capital of France"),
        ("", "who won the football last night"),
        ("", "how old is this house"),
        ("", "where is the nearest hospital"),
        ("", "what's the pin for my bank card"),
        ("", "when does the swimming pool open"),
        ("", "what did we have for dinner yesterday"),
        ("", "how tall is Mount Everest"),
        ("", "what is the plumber's number"),
        ("", "when is the next holiday"),
        ("", "what is the password for the laptop"),
        ("", "when is the piano lesson"),
    ],
)

COMMANDS = _cases(
    "command",
    "tool",
    [
        ("list_devices", "which devices are there"),
        ("list_devices", "show me all the speakers in the kitchen"),
        ("get_device_status", "what is the status of the hall speaker"),
        ("get_device_status", "how is the kitchen device doing"),
        ("announce", "announce on every speaker that dinner is ready"),
        ("announce", "speak this message on the hall device"),
        ("HassTurnOn", "could you put the lights on in the kitchen"),
        ("HassTurnOn", "switch on the garden lights"),
        ("HassTurnOff", "kill the lights in the bedroom"),
        ("HassTurnOff", "switch off the hall switch"),
        ("HassLightSet", "dim the living room lamp to thirty percent"),
        ("HassLightSet", "make the bedroom light blue"),
        ("HassGetState", "is the hall switch on or off"),
        ("HassGetState", "did I leave the kitchen light on"),
        ("play_music", "play some jazz"),
        ("play_music", "put on the radio"),
        ("start_timer", "set a timer for ten minutes"),
        ("start_timer", "start a countdown for the eggs"),
    ],
)

CHITCHAT = _cases(
    "chitchat",
    "none",
    [
        ("", "how are you today"),
        ("", "tell me a joke"),
        ("", "thank you"),
        ("", "good morning"),
        ("", "what's your name"),
        ("", "I love you"),
        ("", "never mind"),
        ("", "I'm bored"),
        ("", "goodnight"),
        ("", "do you like cats"),
        ("", "hello there"),
        ("", "that's all for now"),
    ],
)

CASES: tuple[Case, ...] = (*ANSWERABLE, *UNANSWERABLE, *COMMANDS, *CHITCHAT)

# Questions asked again: the same question in other words (the cache may answer), and a
# different question in nearly the same words (it must not).
SAME_QUESTION = (
    ("what is the guest wifi password", "what's the guest wifi password"),
    ("what is the guest wifi password", "tell me the guest wifi password"),
    ("when are the bins collected", "when do the bins get collected"),
    ("what time does school start", "what time does school begin"),
    ("where is the spare key", "where's the spare key"),
)
OTHER_QUESTION = (
    ("what is the guest wifi password", "what is the neighbour's wifi password"),
    ("what is the guest wifi password", "what is the guest wifi name"),
    ("when is Mert's dentist appointment", "when is Mert's doctor appointment"),
    ("what time does school start", "what time does school finish"),
    ("how do I turn off the alarm", "how do I turn on the alarm"),
    ("when are the bins collected", "when are the bins emptied"),
)
