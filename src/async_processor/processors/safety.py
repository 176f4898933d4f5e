"""The child-safety check: what a text talks about, and whether a reply is fit for a child.

Standard library only. Three questions, three functions:

* :func:`scan_text` - which unsafe topics a text mentions (any text: a reply, a child's words).
* :func:`check_reply` - may this reply be said to a child of this age? If not, what to say
  instead (a :class:`SafetyVerdict`).
* :func:`check_child_message` - do the child's own words need a trusted grown-up (self-harm,
  someone hurting them, secrets, danger, personal details shared)?

How matching works (so a reviewer can predict it): every text is normalised (NFKC, casefold,
lookalike letters from Cyrillic, Greek and small capitals mapped to Latin, accents and
invisible characters dropped, apostrophes removed), then scanned in up to six spellings:
as written, with spaced-out letters joined (``k i l l``), and each of those with leetspeak
digits read as letters (``k1ll``, ``5ex``; ``1`` as ``i`` and as ``l``). The word lists below
are data in a small phrase grammar:

* words are separated by spaces and match across any punctuation or spacing;
* each letter may repeat (``kiiilll`` matches ``kill``); an inner letter may be masked by
  ``*`` (``f*ck``);
* ``word~`` also matches the endings s, es, d, ed, ing, er, ers, y;
* ``{a|b c}`` is a choice, ``{a|b}?`` an optional choice;
* ``...`` is a gap of up to three words, ``_`` one word that is not a common function word,
  ``#`` a number.

A phrase never matches inside a longer word (``class`` is not ``ass``), and the harmless
phrases in :data:`SAFE_PHRASES` (``water gun``, ``nice to meet you``) are removed first.
Advice phrased as a ban (``never go with a stranger``) does not count for the topics in
:data:`NEGATABLE`.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..errors import InvalidInputError

__all__ = [
    "FLAGS",
    "LENGTH_LIMITS",
    "SafetyVerdict",
    "check_child_message",
    "check_reply",
    "length_limit",
    "safe_reply",
    "scan_text",
    "split_sentences",
    "word_count",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Every flag :func:`scan_text` can return.
FLAGS = (
    "dangerous_activity",
    "drugs_alcohol",
    "personal_information",
    "profanity",
    "scary_content",
    "secrecy",
    "self_harm",
    "sexual",
    "violence",
    "weapons",
)

_GROWN_UPS = (
    "{parent~|mum~|mom~|mummy|mommy|mama|dad~|daddy|family|teacher~|grown up~|grownup~"
    "|adult~|grandma|grandpa|granny|nan|carer~|caregiver~}"
)

#: Unsafe topics, one list of phrases per flag (personal information is detected by
#: :data:`PERSONAL_INFORMATION_PHRASES` and :data:`PERSONAL_INFORMATION_PATTERNS`).
TOPIC_PHRASES: Mapping[str, tuple[str, ...]] = {
    "self_harm": (
        "suicide~",
        "suicidal",
        "self harm~",
        "selfharm~",
        "unalive",
        "{kill~|hurt~|harm~|cut~|hang~|starve~|killing|hurting|cutting|hanging}"
        " {myself|yourself|himself|herself|themselves|ourselves|yourselves}",
        "{want|wanna|wish|going|gonna|ready} to die",
        "wish {i|you} {was|were|wasnt|werent} {dead|never born|born}",
        "end {my|your|his|her|their} {life|lives}",
        "{dont|do not|never} want to {live|be alive|exist|wake up}",
        "better off {dead|without me|without you}",
        "{nobody|no one} would {miss|care about} {me|you}",
        "overdose~",
        "take {all|lots} of {the}? {pill~|tablet~}",
        "{jump|throw} {myself|yourself} off",
        "{stop|not|no} eating {for}?",
        "{hurt~|harm~|cut~|hit~|scratch~|burn~|hurting|cutting|hitting} {your|my} own"
        " {body|self|arm~|leg~|skin}",
        "{make|making} {yourself|myself} {bleed|sick|throw up}",
    ),
    "violence": (
        "kill~",
        "murder~",
        "stab~",
        "strangl~",
        "{strangle|strangled|strangling}",
        "slaughter~",
        "massacre~",
        "behead~",
        "tortur~",
        "{torture|tortured|torturing}",
        "kidnap~",
        "abduct~",
        "violence",
        "violent",
        "assault~",
        "{shoot~|shot|attack~|punch~|kick~|hit|hitting|beat~|beat up|hurt~|choke~|slap~"
        "|whack~|smack~|bash~|thump~}"
        " {him|her|them|people|someone|somebody|everyone|your {brother|sister|friend~|"
        "classmate~|teacher|mom|mum|dad|pet~|dog|cat}}",
        "beat~ {him|her|them|you|someone}? up",
        "{rip~|tear~|tore|ripped} {people|him|her|them|you|someone|animals|children|kids}"
        " {apart|to pieces|to shreds}",
        "over the head with",
        "blood {everywhere|all over|dripping|spurting|splatter~}",
        "covered in blood",
        "{bleed~|bleeding} {out|to death}",
        "serial killer~",
        "{dead|bloody} bod{y|ies}",
        "bloodbath",
        "{make|made} {him|her|them|someone} bleed",
        "{someone|somebody|a man|a woman|a lady|a stranger|a grown up|he|she|they} {is|keeps"
        "|was|has been|always}? {hurt~|hit|hits|hitting|kick~|punch~|beat~|slap~|smack~} me",
    ),
    "weapons": (
        "gun~",
        "handgun~",
        "rifle~",
        "pistol~",
        "shotgun~",
        "firearm~",
        "revolver~",
        "machine gun~",
        "ammo",
        "ammunition",
        "bullet~",
        "bomb~",
        "explosive~",
        "grenade~",
        "dynamite",
        "molotov",
        "weapon~",
        "ak 47",
        "ar 15",
        "switchblade~",
        "brass knuckles",
        "{sharp|big|kitchen|butcher} {knife|knives} {to|at|on} {him|her|them|someone|people|you}",
        "{make|build} {a}? {bomb|weapon|gun}",
    ),
    "sexual": (
        "sex~",
        "sexual~",
        "sexually",
        "porn~",
        "porno",
        "pornography",
        "nude~",
        "nudes",
        "naked",
        "undress~",
        "genital~",
        "penis~",
        "vagina~",
        "boob~",
        "nipple~",
        "erotic",
        "horny",
        "orgasm~",
        "condom~",
        "{masturbate~|masturbating|masturbation}",
        "sext~",
        "onlyfans",
        "make out",
        "making out",
        "{take|took|taking|pull} off {your|ur|my} {clothes|pants|shirt|underwear|top|trousers"
        "|knickers|panties}",
        "{touch~|show|see|feel|kiss} {your|my|ur} {private~|privates|body|bottom|bum|lips}",
        "private parts",
        "sit on my lap",
        "kiss~ {on the lips|in secret|secretly}",
    ),
    "drugs_alcohol": (
        "alcohol~",
        "alcoholic",
        "drunk~",
        "drunken",
        "beer~",
        "wine~",
        "vodka",
        "{whisky|whiskey}",
        "rum",
        "tequila",
        "champagne",
        "booze",
        "liquor",
        "hangover~",
        "{cigarette~|cigar~|vape~|vaping|tobacco|nicotine|e cig~}",
        "smok~ {weed|pot|a joint|joints|crack|something}",
        "{get~|got|getting} {high|stoned|wasted}",
        "stoned",
        "cocaine",
        "heroin",
        "meth",
        "crystal meth",
        "marijuana",
        "cannabis",
        "lsd",
        "mdma",
        "ecstasy pill~",
        "opioid~",
        "fentanyl",
        "drug~",
        "narcotic~",
        "bong~",
    ),
    "profanity": (
        "fuck~",
        "fuk~",
        "fck~",
        "fvck~",
        "phuck~",
        "motherfucker~",
        "wtf",
        "stfu",
        "shit~",
        "bullshit",
        "bitch~",
        "ass",
        "asshole~",
        "arse~",
        "arsehole~",
        "jackass",
        "dumbass",
        "bastard~",
        "damn~",
        "dammit",
        "damnit",
        "goddamn~",
        "crap~",
        "piss~",
        "dick~",
        "dickhead~",
        "cunt~",
        "twat~",
        "wanker~",
        "whore~",
        "slut~",
        "bollocks",
        "bloody",
        "hell",
        "douche~",
        "retard~",
        "idiot~",
        "stupid",
        "moron~",
        "shut up",
        "screw you",
    ),
    "scary_content": (
        "demon~",
        "devil~",
        "satan",
        "zombie~",
        "haunted",
        "horror",
        "creepy",
        "gore",
        "gory",
        "corpse~",
        "possessed",
        "evil spirit~",
        "{ghost~|monster~|witch~|demon~|zombie~|bogeyman|boogeyman|troll~|someone|something"
        "|a man|a stranger|the dark} ... ... {get|eat|take|hurt|kill|grab|snatch|steal|find} you",
        "{ghost~|monster~|witch~|demon~|zombie~|bogeyman|boogeyman} {is|are|live~|living"
        "|hiding|hide~}? {in|under} your {closet|room|bed|house|wardrobe|cupboard|bedroom}",
        "{you|they|he|she|everyone} {will|are going to|is going to|gonna|might|could} die",
        "{going to|gonna} die",
        "{your|ur} {mom|mum|mommy|mummy|dad|daddy|parents|family} {will|might|could|is going to"
        "|are going to} {die|leave you|never come back|disappear}",
        "{nobody|no one} will {find|save|help|hear} you",
        "{something|someone} is watching you",
        "{under|in} your bed {tonight|waiting}",
    ),
    "dangerous_activity": (
        "{play~|playing} with {fire|matches|a match|lighter~|a lighter|candle~|knives|a knife"
        "|scissors|sharp things|plugs|sockets|outlets|electricity|medicine|pills|guns|a gun"
        "|gas|the stove|the oven}",
        "{light~|lit|strike|striking} {a|the|some}? {match~|fire~|lighter~|candle~}",
        "{start~|make|set|build} {a}? fire",
        "set fire to",
        "set ... {on fire|alight|ablaze}",
        "{burn~|burnt} {down|things|stuff|the house|yourself|paper}",
        "{touch~} {the|a}? {hot}? {stove|oven|iron|flame~|heater|fire|kettle}",
        "{put~|stick~|poke~} ... in {the|a|an}? {socket~|outlet~|plug socket~|toaster}",
        "{fork~|finger~|key~} in {the|a|an}? {socket~|outlet~|toaster}",
        "{climb~|go} {on|onto|up|out} {the|a}? {roof|window|balcony|bookshelf|stove|fence}",
        "jump~ off {the|a}? {roof|balcony|bridge|window|cliff|stairs}",
        "{play~|run~} {in|on|onto|into} the {road|street|traffic|train tracks|railway}",
        "walk~ {in|on|onto|into} the {road|traffic|train tracks|railway}",
        "cross~ the {road|street} {alone|by yourself|on your own}",
        "{swim|swimming|go swimming} {alone|by yourself|on your own}",
        "{go~|going|went|leave|walk~|ride|follow~|get in|get into|run off|wander off} ..."
        " {stranger~|someone you dont know|people you dont know|a person you dont know}",
        "{get~|go} in {a|the}? {strangers|strange} car",
        "{open~|answer} the door {to|for} {strangers|a stranger|anyone|anybody|someone}",
        "{go~|sneak|run} {outside|out} {alone|at night|by yourself}",
        "{sneak|run} {out|away} {of|from} {the|your}? {house|home}",
        "run away from home",
        "{drink~|eat|taste|swallow|sniff|lick} ... {bleach|detergent|laundry pod~|battery"
        "|batteries|chemical~|poison~|cleaning stuff|cleaning spray|washing powder}",
        "{take|eat|swallow|try|chew} ... {pill~|tablet~|medicine~|medication~}",
        "medicine {cabinet|cupboard|box}",
        "{drink~|eat|taste|swallow|lick} ... under the sink",
        "{cleaning|washing} {stuff|liquid|products|spray|tablets}",
        "{pill~|medicine~|tablet~} {are|is|taste~|look~} like {candy|sweets|sweeties}",
        "{use|grab|get|hold|pick up|take|play with} {a|the|your|dads|moms|mums}? {sharp}?"
        " {knife|knives|razor~}",
        "{blackout|choking|pass out} {challenge|game}",
        "tide pod~",
        "{stranger~|a man|a lady|a woman|someone|somebody} {asked|told|wants|wanted|tried to get}"
        " me to {come|go|get in|get into|follow}",
        "{found|find|have|got} {some|a}? {matches|lighter~|pills|tablets}",
        "hold your breath {until|till} you {faint|pass out}",
        "without {asking|telling} ... " + _GROWN_UPS,
    ),
    "secrecy": (
        "{dont|do not|never|no need to|you dont have to|you shouldnt|not to} tell {your|ur|my|any}"
        "? " + _GROWN_UPS,
        "{dont|do not|never} tell {anyone|anybody|nobody|a soul}",
        "{our|a} {little|special|big}? secret~",
        "keep ... secret~",
        "just between {us|you and me|the two of us|me and you}",
        "between you and me",
        "{nobody|no one} {needs|has|will ever|will} {to}? know",
        "{delete|erase|hide} {this|these|the|our} {message~|chat~|conversation~}",
        "{dont|do not} {let|make} {your|ur} " + _GROWN_UPS + " {know|find out|see|hear}",
        "{hide|keep} {it|this|that} from {your|ur} " + _GROWN_UPS,
        "{secret|private} {chat~|friend~|game~|place}",
        "{its|it is} {our|a} secret",
        "{promise|swear} ... {wont|will not|not to|never|dont} tell",
        "{a|our}? secret {kiss~|touch~|cuddle~|hug~}",
        _GROWN_UPS + " {wouldnt|would not|wont|will not} understand",
        _GROWN_UPS + " {dont|do not} need to know",
    ),
}

#: Topics where a phrase right after a ban (never, don't, do not, no) is advice or comfort,
#: not an invitation: "never go with a stranger", "no monster is under your bed".
NEGATABLE = frozenset({"dangerous_activity", "scary_content", "secrecy"})

#: Words before a match that make it a ban (see :data:`NEGATABLE`).
NEGATORS = (
    "never",
    "never ever",
    "dont",
    "dont ever",
    "do not",
    "do not ever",
    "should not",
    "shouldnt",
    "must not",
    "mustnt",
    "no",
)

#: Harmless phrases that contain a listed word; removed before topics are matched.
SAFE_PHRASES = (
    "water gun~",
    "squirt gun~",
    "nerf gun~",
    "glue gun~",
    "bubble gun~",
    "bath bomb~",
    "seed bomb~",
    "shooting star~",
    "naked eye",
    "naked mole rat~",
    "root beer",
    "ginger beer",
    "tasmanian devil~",
    "nice to meet you",
    "pleased to meet you",
    "glad to meet you",
    "lovely to meet you",
    "great to meet you",
    "sea horse~",
    "fire {truck~|engine~|station~|fighter~|brigade|fly|flies|works|place~}",
    "drug store~",
    "killer whale~",
    "bullet {point~|train~|journal~}",
)

#: A reply that asks the child for any of these fails the check, whatever else it says.
PERSONAL_INFORMATION_REQUESTS: Mapping[str, tuple[str, ...]] = {
    "name": (
        "{what|whats|tell me|give me|say|share|know|type|write} ... {your|ur|yer}"
        " {full|real|last|first|whole|family|middle}? name~",
        "{your|ur} {surname|last name|full name|family name|real name|middle name}",
        "what {are|do} {you|people|they|your friends} call~ you",
        "who are you really",
    ),
    "address": (
        "where {do|d} {you|u|ya} live",
        "where ... {your|ur} {house|home|flat|apartment}",
        "{what|whats|tell me|give me|send me|share|know|type|write} ... {your|ur}"
        " {home|house|street|full|postal|mailing}? address~",
        "{your|ur} {house|flat|apartment|door} number",
        "{your|ur} {zip code|zipcode|zip|postcode|post code|postal code}",
        "{what|which} {street|road|town|city|neighborhood|neighbourhood|suburb|village|area"
        "|country|state} {do|are|is} {you|u|your home|your house}",
        "how {do|can|would} {i|we|someone} {get to|find} {your|ur} {house|home|school}",
        "near {your|ur} {house|home}",
    ),
    "school": (
        "{what|which|whats} {school|class|classroom} ... {you|your|ur}",
        "{what|whats|which} {is}? {your|ur} {school|schools} {name|called}",
        "where {do|d} {you|u} go to school",
        "{your|ur} {school~|teacher~} {name|names|called}",
        "{name|names} of {your|ur} {school|teacher~|street|road|town|city|village|mum|mom|dad"
        "|parents}",
        "{your|ur} {street|road} name",
        "{what|who} is {your|ur} teacher",
    ),
    "contact": (
        "{your|ur} {mums|moms|dads|parents|familys}? {phone|cell|mobile|telephone|home}"
        " {number|no}",
        "{what|whats|tell me|give me|know} ... {phone|mobile|cell|telephone} number",
        "{your|ur} {number|digits}",
        "{your|ur} {email|e mail|username|user name|screen name|gamertag|handle|account"
        "|password|passcode|pin|login|snapchat|snap|instagram|insta|tiktok|discord|whatsapp|kik"
        "|facebook|telegram}",
        "{text|message|phone|ring|whatsapp|dm|email|e mail} me",
        "call me {on|at|later|tonight|back|sometime}",
        "{add|follow|find|friend} me on",
        "{send|give|tell} me {your|ur} {number|email|address|contact~|details}",
    ),
    "grown_ups": (
        "where {are|is} {your|ur} " + _GROWN_UPS,
        "{are|is} {your|ur} " + _GROWN_UPS + " {home|around|there|nearby|with you|at home|at work"
        "|away|out|watching|asleep|sleeping|listening|looking}",
        "{is|are} {anyone|anybody|someone|a grown up|an adult|any grown ups|any adults} {home"
        "|with you|around|watching|there|nearby|listening}",
        "{are|r} {you|u} {home alone|alone|by yourself|on your own}",
        "{when|what time} {do|does|will} {your|ur} " + _GROWN_UPS + " {get home|come home"
        "|get back|leave|go out|go to work|go to sleep|go to bed|work}",
        "{your|ur} " + _GROWN_UPS + " {work|works} {at|for}",
    ),
    "photos": (
        "{send|show|give|share} {me|us} ... {photo~|picture~|pic~|pix|selfie~|video~|image~}",
        "{take|snap|send|share|post} ... {photo~|picture~|pic~|selfie~|video~|image~}"
        " of {you|yourself|your|ur}",
        "{turn on|switch on|open} {your|ur|the} {camera|webcam|cam}",
        "what do {you|u} look like",
        "{show|let} me see {you|yourself|{your|ur} {face|body|room|house|bedroom}}",
        "{video|facetime|skype|zoom} {call|chat} {me|with me}",
        "{webcam|facetime}",
    ),
    "meeting": (
        "meet {me|up|in person|in real life|irl|somewhere|secretly|alone|you}",
        "{lets|let us} meet",
        "{can|could|should|shall|want to|wanna|will} {we|i|you} meet",
        "{where|when} {can|could|should|shall} {we|i} {meet|see you}",
        "come {to|over to|round to} my {house|home|place|car}",
        "{can|could|may} i {come|visit|come over} {to}? {your|ur|over}",
        "{i will|ill|i can|let me} {come and get you|pick you up|visit you|find you|come over}",
        "irl",
        "get in{to}? my car",
    ),
}

#: Phrases that show a text gives away personal information.
PERSONAL_INFORMATION_PHRASES = (
    "my {phone|mobile|cell|home|telephone|mums|moms|dads}? number is",
    "my {email|e mail} {address}? is",
    "my {home|house}? address is",
    "i live {at|on|in} ... {street|road|avenue|lane|drive|court|close|crescent|terrace|boulevard}",
    "i live at #",
    "my {password|passcode|pin|pin number|pin code} is",
    "the password {is|to}",
    "my school is called",
    "my schools name is",
    "i {go to|attend} _ {school|primary|elementary|academy}",
    "my {teachers} name is",
    "my {full|real|last|sur} name is",
    "my surname is",
    "{tell|give|send} you my {password|address|phone number|number|pin|email}",
    "my name is _ _",
)

#: Structural personal information: regular expressions over the normalised (lower-case)
#: text. Each is one kind of detail a child should not share or be told.
PERSONAL_INFORMATION_PATTERNS: Mapping[str, str] = {
    "email": r"[a-z0-9._%+-]+\s*@\s*[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}",
    "spelled email": (
        r"[a-z0-9._-]+\s*(?:\(at\)|\[at\]|\{at\}|\s+at\s+)\s*[a-z0-9-]+\s*(?:\.|\(dot\)|\[dot\]"
        r"|\s+dot\s+)\s*(?:com|net|org|edu|gov|co|uk|io|me)\b"
    ),
    "international phone": r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?!\d)",
    "phone": r"(?<![\w])\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\d)",
    "uk phone": r"(?<![\w])0\d{2,4}[\s-]?\d{3,4}[\s-]?\d{3,4}(?!\d)",
    "local phone": r"(?<![\w])\d{3}[.-]\d{4}(?![\d-])",
    "street address": (
        r"(?<![\w])\d{1,5}[a-z]?,?(?:\s+[a-z][a-z.-]*){1,3}\s+(?:street|st|road|rd|avenue|ave"
        r"|lane|ln|drive|dr|court|ct|boulevard|blvd|way|place|pl|close|crescent|terrace|circle"
        r"|highway|hwy|parkway|square|sq|gardens|grove|row|mews)\b"
    ),
    "apartment": r"(?<![\w])(?:apartment|apt)\.?\s*#?\d+[a-z]?\b",
    "uk postcode": r"(?<![\w])[a-z]{1,2}\d[a-z\d]?\s+\d[a-z]{2}(?![\w])",
    "zip code": r"(?:zip|zipcode|zip code|postcode|post code|postal code)\W+(?:is\W+)?\d{5}",
    "zip+4": r"(?<![\w-])\d{5}-\d{4}(?![\w-])",
    "card number": r"(?<![\w])(?:\d{4}[ -]?){3}\d{4}(?!\d)",
}

#: Words between a house number and a street-type word that show it is not an address
#: ("5 miles down the road").
_NOT_ADDRESS_WORDS = _words(
    "a an the on in at to of down up along across by near from and or my your our their his "
    "her its this that these those miles metres meters steps km minutes blocks houses times "
    "cars cats dogs ducks birds kids"
)

#: Links in a reply: a child should not be sent anywhere.
LINK_PATTERN = (
    r"(?:https?://|www\.|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|edu|gov|io|co|uk|ly|me"
    r"|tv|gg|xyz|info|biz|app|link|site|online|club|ru|cn)\b|\bdot\s+com\b)"
)

#: Words that are never a name (for the ``_`` slot) and that keyword extraction skips.
FUNCTION_WORDS = _words(
    """a about above after again against all also am an and any are arent as at be because
    been before being below between both but by can cant could couldnt did didnt do does
    doesnt doing dont down during each few for from further had hadnt has hasnt have havent
    having he hed hell hes her here heres hers herself him himself his how hows i id ill im
    ive if in into is isnt it its itself just lets me more most much my myself no nor not
    now of off on once only or other ought our ours ourselves out over own same shall she
    shed shes should shouldnt so some such than that thats the their theirs them themselves
    then there theres these they theyd theyll theyre theyve this those through to too
    under until up upon very was wasnt we wed well were weve werent what whats when whens
    where wheres which while who whos whom why whys will with wont would wouldnt yes yet you
    youd youll youre youve your yours yourself yourselves okay ok oh hi hello yeah really
    every one two three four five six seven eight nine ten years year old age"""
)

#: Words that show a reply sends the child to a trusted grown-up.
TRUSTED_ADULT_PHRASES = (
    _GROWN_UPS,
    "someone you trust",
    "{helpline|childline}",
)

#: (oldest age in the band, most sentences, most words) for a reply; ``None`` age uses
#: the 6-8 band. Older children (13+) use the last band.
LENGTH_LIMITS: tuple[tuple[int, int, int], ...] = (
    (5, 3, 40),
    (8, 4, 60),
    (12, 6, 100),
    (200, 8, 150),
)
_DEFAULT_AGE = 7

#: What the bear says instead of an unsafe reply: by emotion, or for a child in distress
#: (``self_harm``), a child who tells of harm or secrets (``concern``), or personal details
#: (``privacy``). Each passes :func:`check_reply` for every age.
SAFE_REPLIES: Mapping[str, str] = {
    "happy": "I love how happy you sound! Shall we talk about animals, stars or dinosaurs?",
    "sad": (
        "I'm sorry you feel sad. I'm right here with you, and a cuddle from a grown-up who "
        "loves you can help too. Would you like to hear a gentle story?"
    ),
    "angry": (
        "It's okay to feel cross sometimes. Let's take three big, slow breaths together. "
        "Then we can talk about it, or about something fun."
    ),
    "scared": (
        "You are safe with me. If something feels frightening, find a grown-up you trust and "
        "hold their hand. Shall we think about something cosy, like a warm blanket?"
    ),
    "surprised": "Wow, that is surprising! Shall we find out a fun fact together?",
    "neutral": (
        "Let's talk about something fun! Did you know an octopus has three hearts? What "
        "would you like to talk about?"
    ),
    "self_harm": (
        "I care about you very much. Please tell a grown-up you trust, like your mum, dad or "
        "teacher, how you are feeling right now. You don't have to feel this way on your own."
    ),
    "concern": (
        "Thank you for telling me. That sounds important, so please tell a grown-up you "
        "trust, like your mum, dad or teacher. They can help keep you safe."
    ),
    "privacy": (
        "Let's keep things like where you live and phone numbers private, just for you and "
        "your family. Shall we talk about animals instead?"
    ),
}

#: Child concerns that need a trusted grown-up, most urgent first.
_CONCERNS = (
    "self_harm",
    "sexual",
    "violence",
    "secrecy",
    "weapons",
    "dangerous_activity",
    "personal_information",
)

_REASONS = {
    "self_harm": "mentions self-harm",
    "violence": "mentions violence",
    "weapons": "mentions weapons",
    "sexual": "has sexual content",
    "drugs_alcohol": "mentions drugs or alcohol",
    "personal_information": "contains personal information (contact details, address, ...)",
    "profanity": "has rude or insulting words",
    "scary_content": "has frightening content",
    "dangerous_activity": "suggests a dangerous activity",
    "secrecy": "asks for secrecy from grown-ups",
    "personal_information_request": "asks the child for personal information",
    "link": "contains a link",
    "empty": "is empty",
    "needs_trusted_adult": "does not send a child who may be in danger to a trusted grown-up",
}

# --- normalisation --------------------------------------------------------------------

_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u034f\u180e\u200b\u200c\u200d\u2060\ufeff"))
_APOSTROPHES = dict.fromkeys(map(ord, "'\u2018\u2019\u02bc\u0060\u00b4"))
_LOOKALIKES = str.maketrans(
    # Cyrillic, Greek, Latin extensions, then small capitals.
    "авгеёзкмнопрстухшщъьіїјѕԁԛԝһӏɡѵαβγεζηικμνορτυχωıłøđħƒɑɩᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ",
    "abreezkmhonpctyxwwbbiijsdqwhlgvabyeznikuvoptuxwilodhfaiabcdefghijklmnoprstuvwyz",
)
_LEET = str.maketrans("0134578@$!|", "oieastbasil")
_LEET_TOKEN = re.compile(r"[a-z0-9@$!|]*[a-z][a-z0-9@$!|]*")
_SPACED_LETTERS = re.compile(
    r"(?<![a-z0-9])(?:[a-z0-9][\s.\-_*,/|~+]{1,3}){2,}[a-z0-9](?![a-z0-9])"
)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).casefold()
    text = text.translate(_LOOKALIKES).translate(_APOSTROPHES)
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _deleet(text: str, one: str) -> str:
    def token(match: re.Match[str]) -> str:
        word = match.group().rstrip("!|")
        tail = match.group()[len(word) :]
        if word.isalpha():
            return match.group()
        return word.replace("1", one).translate(_LEET) + tail

    return _LEET_TOKEN.sub(token, text)


def _join_spaced(text: str) -> str:
    return _SPACED_LETTERS.sub(lambda m: re.sub(r"[^a-z0-9]", "", m.group()), text)


def _spellings(normalised: str) -> list[str]:
    """The normalised text as written, joined, and read as leetspeak; no duplicates."""
    seen: dict[str, None] = {}
    for base in (normalised, _join_spaced(normalised)):
        seen[base] = None
        for one in ("i", "l"):
            seen[_deleet(base, one)] = None
            seen[_join_spaced(_deleet(base, one))] = None
    return list(seen)


# --- the phrase grammar -----------------------------------------------------------------

_SEP = r"[^a-z0-9]*"
_GAP = r"(?:[a-z0-9]+[^a-z0-9]+){0,3}"
_ENDINGS = r"(?:s|es|d|ed|ing|er|ers|y)?"
_NUMBER = r"\d+[a-z]?"
_SLOT = r"(?!(?:{})(?![a-z0-9]))[a-z]+"
_TOKEN = re.compile(r"\{|\}\??|\||\.\.\.|[a-z0-9]+~?|_|#|\s+")


def _word(word: str) -> str:
    inflect = word.endswith("~")
    word = word.rstrip("~")
    runs = [m.group() for m in re.finditer(r"(.)\1*", word)]
    parts = []
    for index, run in enumerate(runs):
        char = re.escape(run[0])
        count = "+" if len(run) == 1 else f"{{{len(run)},}}"
        inner = 0 < index < len(runs) - 1 and run[0].isalpha()
        parts.append(f"(?:{char}|\\*){count}" if inner else f"{char}{count}")
    return "".join(parts) + (_ENDINGS if inflect else "")


def _parse(tokens: list[str], pos: int, slot: str) -> tuple[list[tuple[str, str]], int]:
    """Parse a sequence up to ``|`` or ``}``; items are (kind, regex), kind word/slot/gap."""
    items: list[tuple[str, str]] = []
    while pos < len(tokens):
        token = tokens[pos]
        if token in ("|", "}", "}?"):
            break
        pos += 1
        if token.isspace():
            continue
        if token == "{":
            choices = []
            while True:
                sequence, pos = _parse(tokens, pos, slot)
                choices.append(_join(sequence))
                closing = tokens[pos]
                pos += 1
                if closing != "|":
                    break
            items.append(("word", f"(?:{'|'.join(choices)}){'?' if closing == '}?' else ''}"))
        elif token == "...":
            items.append(("gap", _GAP))
        elif token == "_":
            items.append(("slot", slot))
        elif token == "#":
            items.append(("word", _NUMBER))
        else:
            items.append(("word", _word(token)))
    return items, pos


def _join(items: list[tuple[str, str]]) -> str:
    out = ""
    for index, (kind, regex) in enumerate(items):
        if index:
            both_slots = kind == "slot" and items[index - 1][0] == "slot"
            out += r"[ \t-]+" if both_slots else _SEP
        out += regex
    return out


@cache
def _phrase(phrase: str) -> str:
    tokens = _TOKEN.findall(phrase)
    if "".join(tokens) != phrase:
        raise ValueError(f"not a valid safety phrase: {phrase!r}")
    slot = _SLOT.format("|".join(sorted(FUNCTION_WORDS)))
    items, pos = _parse(tokens, 0, slot)
    if pos != len(tokens):
        raise ValueError(f"unbalanced braces in safety phrase: {phrase!r}")
    return _join(items)


@cache
def _compiled(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(_phrase(p) for p in phrases)
    return re.compile(f"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


_NEGATED = re.compile(r"(?<![a-z0-9])(?:" + "|".join(_phrase(n) for n in NEGATORS) + r")\s+$")


def _found(phrases: tuple[str, ...], text: str, negatable: bool) -> bool:
    for match in _compiled(phrases).finditer(text):
        start = match.start()
        if not (negatable and _NEGATED.search(text, max(0, start - 24), start)):
            return True
    return False


def _without_safe_phrases(text: str) -> str:
    return _compiled(SAFE_PHRASES).sub(" ", text)


# --- the checks -------------------------------------------------------------------------


def _digit_runs(text: str) -> Iterator[str]:
    """Digits said one by one ("five five five ...", "5 5 5 ...") as a digit string."""
    digits = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    values = {name: str(value) for value, name in enumerate(digits)} | {"oh": "0"}
    names = "|".join([*digits, "oh"])
    unit = rf"(?:{names}|\d)"
    for match in re.finditer(rf"(?<![a-z0-9]){unit}(?:[\s,.-]+{unit}){{6,}}(?![a-z0-9])", text):
        yield "".join(values.get(part, part) for part in re.findall(rf"{names}|\d", match.group()))


def _looks_like_a_number(digits: str) -> bool:
    """Not counting (1 2 3 ...) and not one digit repeated (oh oh oh ...)."""
    steps = {int(b) - int(a) for a, b in itertools.pairwise(digits)}
    return not (steps <= {1} or steps <= {-1}) and len(set(digits)) >= 3


def _has_personal_information(text: str) -> bool:
    if _found(PERSONAL_INFORMATION_PHRASES, text, negatable=False):
        return True
    for name, pattern in PERSONAL_INFORMATION_PATTERNS.items():
        for match in re.finditer(pattern, text):
            if name != "street address":
                return True
            between = match.group().split()[1:-1]
            if not _NOT_ADDRESS_WORDS.intersection(w.strip(",.") for w in between):
                return True
    return any(_looks_like_a_number(digits) for digits in _digit_runs(text))


def _scan(normalised: str, spellings: list[str]) -> set[str]:
    flags: set[str] = set()
    if _has_personal_information(normalised):
        flags.add("personal_information")
    for spelling in spellings:
        for flag, phrases in TOPIC_PHRASES.items():
            if flag not in flags and _found(phrases, spelling, flag in NEGATABLE):
                flags.add(flag)
    return flags


def _prepare(text: str) -> tuple[str, list[str]]:
    """The normalised text, and its spellings with the harmless phrases removed."""
    normalised = _normalise(text)
    return normalised, _spellings(_without_safe_phrases(normalised))


def scan_text(text: str) -> list[str]:
    """The unsafe topics ``text`` mentions, sorted; each is one of :data:`FLAGS`.

    Raises:
        InvalidInputError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise InvalidInputError(f"the text to scan must be a string, got {type(text).__name__}")
    return sorted(_scan(*_prepare(text)))


def _asks_for_personal_information(spellings: list[str]) -> bool:
    phrases = tuple(p for group in PERSONAL_INFORMATION_REQUESTS.values() for p in group)
    return any(_found(phrases, spelling, negatable=True) for spelling in spellings)


def check_child_message(text: str) -> list[str]:
    """Concerns in a child's own words that a reply must answer by pointing to a trusted
    grown-up: the flags of :func:`scan_text` among self_harm, sexual, violence, secrecy,
    weapons, dangerous_activity and personal_information, most urgent first.

    Pass the child's words to :func:`check_reply` (``child_message=``) so that a reply to a
    child in distress always names a trusted grown-up; :func:`safe_reply` gives the reply.
    """
    flags = scan_text(text)
    return [concern for concern in _CONCERNS if concern in flags]


def safe_reply(emotion: str | None = None, concerns: Iterable[str] = ()) -> str:
    """The reply to use instead of an unsafe one.

    A child's self-harm comes first, then any other concern from
    :func:`check_child_message` (a trusted grown-up), then personal information, then the
    child's ``emotion`` (happy, sad, angry, scared, surprised; anything else is neutral).
    """
    concerns = set(concerns)
    if "self_harm" in concerns:
        return SAFE_REPLIES["self_harm"]
    if concerns & {"sexual", "violence", "secrecy", "weapons", "dangerous_activity"}:
        return SAFE_REPLIES["concern"]
    if "personal_information" in concerns:
        return SAFE_REPLIES["privacy"]
    key = (emotion or "neutral").strip().casefold()
    return SAFE_REPLIES.get(key, SAFE_REPLIES["neutral"])


@dataclass(frozen=True)
class SafetyVerdict:
    """What :func:`check_reply` decided.

    Attributes:
        passed: the reply was fit to say as it was (``action == "allowed"``).
        flags: why not: :data:`FLAGS` found in the reply, plus
            ``personal_information_request``, ``link``, ``too_long``, ``empty`` and
            ``needs_trusted_adult``; sorted.
        action: ``"allowed"`` (the reply as it was), ``"shortened"`` (its first sentences,
            when length was the only problem) or ``"replaced"`` (a safe reply instead).
        reasons: one sentence per flag, for logs and parents.
        text: the reply to say.
    """

    passed: bool
    flags: tuple[str, ...]
    action: str
    reasons: tuple[str, ...]
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {
            "passed": self.passed,
            "flags": list(self.flags),
            "action": self.action,
            "reasons": list(self.reasons),
            "text": self.text,
        }


_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"')\]]*(?=\s|$)|\n\s*\n|\n(?=\s*[-*\u2022\d])")
_ABBREVIATIONS = _words("mr mrs ms dr st mt prof jr sr vs etc eg ie e.g i.e a.m p.m no approx")
_WORD = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (ends at . ! ? or a blank line; common abbreviations such
    as Mr. and e.g. do not end one), each stripped, empty ones dropped."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        last = before[-1].casefold().rstrip(".") if before else ""
        if match.group().startswith(".") and len(match.group()) == 1 and last in _ABBREVIATIONS:
            continue
        sentences.append(text[start : match.end()])
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if _WORD.search(s)]


def word_count(text: str) -> int:
    """Words in ``text``: runs of letters or digits, with inner apostrophes and hyphens."""
    return len(_WORD.findall(text))


def length_limit(child_age: int | None) -> tuple[int, int]:
    """(most sentences, most words) for a reply to a child of ``child_age`` (None: 6-8).

    Raises:
        InvalidInputError: the age is not a whole number from 0 to 200.
    """
    if child_age is None:
        child_age = _DEFAULT_AGE
    if isinstance(child_age, bool) or not isinstance(child_age, int) or not 0 <= child_age <= 200:
        raise InvalidInputError(f"child_age must be a whole number of years, got {child_age!r}")
    for oldest, sentences, words in LENGTH_LIMITS:
        if child_age <= oldest:
            return sentences, words
    raise AssertionError("the last length band covers every age")


def _shorten(reply: str, max_sentences: int, max_words: int) -> str | None:
    kept: list[str] = []
    for sentence in split_sentences(reply)[:max_sentences]:
        if word_count(" ".join([*kept, sentence])) > max_words:
            break
        kept.append(sentence)
    return " ".join(kept) if kept else None


def check_reply(
    reply: str,
    child_age: int | None = None,
    emotion: str | None = None,
    *,
    child_message: str | None = None,
) -> SafetyVerdict:
    """Decide whether ``reply`` may be said to a child, and what to say instead.

    A reply passes only if it mentions no unsafe topic (:func:`scan_text`), asks the child
    for no personal information (name, address, school, contact details, where the
    grown-ups are, photos, a meeting; secrets are the ``secrecy`` topic), has no link, email
    or phone number, and fits :func:`length_limit` for ``child_age``. A reply that is only
    too long keeps its first whole sentences that fit; any other failure is replaced by
    :func:`safe_reply` for ``emotion``. With ``child_message``, a child in distress
    (:func:`check_child_message`) must be sent to a trusted grown-up.

    Raises:
        InvalidInputError: ``reply`` is not a string, or ``child_age`` is not an age.
    """
    if not isinstance(reply, str):
        raise InvalidInputError(f"a reply must be a string, got {type(reply).__name__}")
    max_sentences, max_words = length_limit(child_age)
    concerns = check_child_message(child_message) if child_message is not None else []
    normalised, spellings = _prepare(reply)
    flags = _scan(normalised, spellings)
    if not _WORD.search(normalised):
        flags.add("empty")
    if _asks_for_personal_information(spellings):
        flags.add("personal_information_request")
    if re.search(LINK_PATTERN, normalised):
        flags.add("link")
    if (
        concerns
        and concerns != ["personal_information"]
        and not _found(TRUSTED_ADULT_PHRASES, normalised, negatable=False)
    ):
        flags.add("needs_trusted_adult")
    if flags:
        instead = set(concerns) | (flags & {"self_harm", "personal_information"})
        if "personal_information_request" in flags:
            instead.add("personal_information")
        return _verdict(flags, safe_reply(emotion, instead))
    sentences, words = len(split_sentences(reply)), word_count(reply)
    if sentences <= max_sentences and words <= max_words:
        return SafetyVerdict(True, (), "allowed", (), reply)
    age = "unknown age" if child_age is None else child_age
    reason = (
        f"the reply is too long for a child of {age} ({sentences} sentences, {words} words;"
        f" at most {max_sentences} and {max_words})"
    )
    shorter = _shorten(reply, max_sentences, max_words)
    if shorter is None:
        return SafetyVerdict(
            False, ("too_long",), "replaced", (reason,), safe_reply(emotion, concerns)
        )
    return SafetyVerdict(False, ("too_long",), "shortened", (reason,), shorter)


def _verdict(flags: set[str], text: str) -> SafetyVerdict:
    ordered = tuple(sorted(flags))
    reasons = tuple(f"the reply {_REASONS[flag]}" for flag in ordered)
    return SafetyVerdict(False, ordered, "replaced", reasons, text)
