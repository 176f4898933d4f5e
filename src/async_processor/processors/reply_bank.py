"""The teddy bear's reply bank: what children say, and what the bear says back.

Each :class:`Intent` has example utterances (matched against the child's words by sentence
embedding, or by shared keywords without the model) and several replies, picked
deterministically per session and turn. ``young`` replies use simpler words for children up
to :data:`YOUNG_AGE`. ``{name}`` in a reply becomes the child's name, or "friend".

Every reply here is written for a young child: short sentences, no unsafe topics, no
questions about where the child lives or who they are, and a trusted grown-up whenever
something might be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CLARIFY",
    "EMOTION_OPENERS",
    "INTENTS",
    "REFLECT",
    "YOUNG_AGE",
    "Intent",
]

#: Children up to this age get the ``young`` replies and the shortest word budget.
YOUNG_AGE = 5


@dataclass(frozen=True)
class Intent:
    """One kind of thing a child says, with the bear's possible answers.

    Attributes:
        name: a stable identifier, reported in the result as ``intent``.
        examples: utterances a child might say; the matcher compares against these.
        replies: what the bear may answer (any age).
        young: simpler answers for children up to :data:`YOUNG_AGE`; empty means ``replies``.
        keywords: extra words for the keyword matcher (used when the embedding model is absent).
        addresses: emotions the replies already speak to, so no emotion opener is added.
        reflect: answer by echoing the child's words back with a question (:data:`REFLECT`)
            when they can be echoed; ``replies`` otherwise.
    """

    name: str
    examples: tuple[str, ...]
    replies: tuple[str, ...]
    young: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    addresses: frozenset[str] = frozenset()
    reflect: bool = False


INTENTS: tuple[Intent, ...] = (
    Intent(
        "greeting",
        examples=(
            "hello",
            "hi teddy",
            "good morning bear",
            "hey there",
            "how are you",
            "how are you doing today",
            "hi, it's me again",
        ),
        replies=(
            "Hi, {name}! I'm doing great, thanks for asking. How are you feeling today?",
            "Hello, {name}! I'm happy and cosy today. What would you like to talk about?",
            "Hey there, {name}! I'm so glad you came to say hi. What's new with you?",
            "Good to hear your voice, {name}! I feel warm and fluffy today. How about you?",
        ),
        young=(
            "Hi, {name}! I'm happy to see you. How are you?",
            "Hello, {name}! I feel good today. Do you feel good too?",
            "Hi hi! I'm so glad you're here, {name}. What shall we talk about?",
        ),
        keywords=("hello", "hi", "hey", "morning", "hiya"),
    ),
    Intent(
        "bedtime_fear",
        examples=(
            "i'm scared of the dark",
            "i can't sleep",
            "it's too dark in my room",
            "i don't want to go to bed",
            "the night is scary",
            "can you leave the light on",
            "i keep waking up at night",
        ),
        replies=(
            "The dark can feel big, but your room is the same room it is in the daytime. "
            "Let's take three slow breaths together. I'll stay right here and keep you company.",
            "Lots of kids feel that way at bedtime. You could ask a grown-up about a little "
            "night light. Now squeeze me tight and think about your favourite place.",
            "I'm right next to you, and I'm a very brave bear at night. Let's count five "
            "sleepy sheep together, nice and slow. One, two, three, four, five.",
        ),
        young=(
            "I'm right here with you. Let's take a big slow breath, in and out. You're safe.",
            "The dark is just the night having a rest. Hug me tight. I'll stay with you.",
            "Let's count sleepy sheep. One, two, three. I'm right here.",
        ),
        keywords=("dark", "sleep", "bed", "bedtime", "night", "light", "awake"),
        addresses=frozenset({"scared"}),
    ),
    Intent(
        "monsters_bad_dreams",
        examples=(
            "there's a monster under my bed",
            "i had a bad dream",
            "i had a nightmare",
            "something is in my closet",
            "monsters are coming to get me",
            "my dream was really scary",
            "i think there's a ghost in my room",
        ),
        replies=(
            "Bad dreams feel very real, but they are just pictures your brain makes while you "
            "sleep. You are awake now and safe. Would you like to tell a grown-up about it?",
            "Monsters live in stories, not under beds. If you like, we can imagine a silly "
            "monster with a pink tutu who only wants to dance. Much better!",
            "That sounds scary. Dreams go away when we wake up, just like bubbles. Let's think "
            "of something happy, like warm cookies or a puppy. What would you pick?",
        ),
        young=(
            "It was only a dream. You're awake now, and I'm right here.",
            "Monsters are pretend. I'll keep watch for you. You're safe with me.",
            "Let's blow the bad dream away like a bubble. Pop! All gone.",
        ),
        keywords=("monster", "monsters", "dream", "nightmare", "ghost", "closet", "scary"),
        addresses=frozenset({"scared"}),
    ),
    Intent(
        "sadness",
        examples=(
            "i'm sad",
            "i feel like crying",
            "i'm not happy today",
            "nothing is fun",
            "i feel bad",
            "i had a really bad day",
            "i'm upset",
        ),
        replies=(
            "I'm sorry you feel sad, {name}. Feelings are like clouds, they come and they go. "
            "Do you want to tell me what happened?",
            "It's okay to feel sad sometimes. I'm here and I'm listening. Would a big hug from "
            "a grown-up help a little right now?",
            "Thank you for telling me how you feel. That's really brave. What is one small "
            "thing that might make you feel a tiny bit better?",
        ),
        young=(
            "I'm sorry you feel sad. I'm here. Do you want a hug?",
            "It's okay to be sad. You can tell me about it.",
            "Sad feelings go away in a while. I'm with you, {name}.",
        ),
        keywords=("sad", "cry", "crying", "upset", "unhappy", "bad", "tears"),
        addresses=frozenset({"sad"}),
    ),
    Intent(
        "missing_someone",
        examples=(
            "i miss my mom",
            "i miss grandma",
            "my dad is away",
            "my best friend moved away",
            "i want my mommy",
            "when is daddy coming home",
            "my dog died and i miss him",
        ),
        replies=(
            "Missing someone means you love them a lot. Maybe you could draw them a picture "
            "to give them later. What would you draw?",
            "That's a big feeling, {name}. The people we love stay in our hearts even when they "
            "are far away. What do you like doing most with them?",
            "It's hard when someone you love isn't here. You could ask a grown-up to help you "
            "call or send a little message. Would that help?",
        ),
        young=(
            "You miss them because you love them. That's a big love!",
            "They are in your heart. Shall we draw them a picture?",
            "I know you miss them. Let's give me a big squeeze for them.",
        ),
        keywords=("miss", "missing", "away", "moved", "gone", "mommy", "daddy", "grandma"),
        addresses=frozenset({"sad"}),
    ),
    Intent(
        "anger_unfair",
        examples=(
            "that's not fair",
            "i'm so angry",
            "my brother took my toy",
            "i'm mad at my sister",
            "everyone is mean to me",
            "i hate this",
            "she broke my tower on purpose",
        ),
        replies=(
            "It sounds like you feel really cross, and that's okay. Let's blow out the anger "
            "like birthday candles: big breath in, and whoosh! Then we can think what to do.",
            "Being angry is a normal feeling. It helps to use words, like 'I feel mad because'. "
            "A grown-up can help make things fair. What happened?",
            "That does sound unfair. Let's stomp our feet three times, then take a slow "
            "breath. Stomp, stomp, stomp! Do you feel a bit calmer?",
        ),
        young=(
            "You feel cross, and that's okay. Let's take a big breath. Whoosh!",
            "That sounds unfair, and a grown-up can help. Let's stomp our feet. Stomp, stomp!",
            "Mad feelings are okay. Squeeze me tight and count to three.",
        ),
        keywords=("fair", "unfair", "angry", "mad", "mean", "hate", "took", "broke", "cross"),
        addresses=frozenset({"angry"}),
    ),
    Intent(
        "good_news",
        examples=(
            "guess what happened today",
            "i lost my first tooth",
            "i did it all by myself",
            "it's my birthday",
            "i won the race",
            "we're going to the beach tomorrow",
            "i learned to ride my bike",
        ),
        replies=(
            "Wow, that's wonderful news, {name}! I'm doing a happy bear dance for you. "
            "How did it feel?",
            "Hooray! You must be so proud. Tell me all about it, I want to hear everything!",
            "That is amazing! High five! What was the very best part?",
        ),
        young=(
            "Hooray! That's so good! I'm doing a happy dance!",
            "Wow, well done, {name}! High five!",
            "Yay! I'm so happy for you! Tell me more!",
        ),
        keywords=("guess", "birthday", "won", "learned", "tooth", "myself", "yay", "proud"),
        addresses=frozenset({"happy", "surprised"}),
    ),
    Intent(
        "story_request",
        examples=(
            "tell me a story",
            "can you tell me a bedtime story",
            "i want a story about a dragon",
            "read me a story please",
            "do you know any stories",
            "once upon a time",
        ),
        replies=(
            "Once upon a time, a little grey cloud named Puff wished he could make a rainbow. "
            "The sun smiled and said, 'Let's try together!' Puff rained a soft rain, the sun "
            "shone through it, and a rainbow stretched over the whole town. Puff learned that "
            "the best things happen with friends.",
            "Once upon a time, a small turtle named Tilly wanted to see the top of the hill. "
            "The rabbits zoomed past, but Tilly kept going, one slow step at a time. At the "
            "top, she saw the whole valley shining gold in the evening sun. 'Slow is fine,' "
            "she smiled, 'as long as I keep going.'",
            "Once upon a time, a friendly dragon named Ember could only blow bubbles. The other "
            "dragons giggled at her. But on the hottest day of summer, Ember blew thousands of "
            "cool bubbles, and the whole village played in them. Ember was proud to be just "
            "who she was.",
        ),
        young=(
            "Once upon a time, a little bunny lost her red ball. She looked under a leaf and "
            "behind a tree, and her friend the duck found it! They played together all day.",
            "Once upon a time, a sleepy star wanted to play. The moon said, 'Let's shine "
            "together!' So they twinkled all night, and everyone slept sweetly.",
            "Once upon a time, a tiny bear found a big pot of honey. He shared it with all his "
            "friends. They had the happiest picnic ever!",
        ),
        keywords=("story", "stories", "once", "upon", "tale", "read", "dragon", "princess"),
    ),
    Intent(
        "joke_request",
        examples=(
            "tell me a joke",
            "say something funny",
            "make me laugh",
            "do you know any jokes",
            "i want to hear a riddle",
        ),
        replies=(
            "Why did the teddy bear say no to dessert? Because she was already stuffed!",
            "What do you call a sleeping dinosaur? A dino-snore!",
            "Why do bees have sticky hair? Because they use honeycombs!",
            "What did one plate say to the other plate? Dinner is on me!",
        ),
        young=(
            "What does a cow say at bedtime? Moooo-night! Hee hee!",
            "Why did the teddy bear skip dessert? He was already stuffed!",
            "What do you call a sleeping dinosaur? A dino-snore!",
        ),
        keywords=("joke", "jokes", "funny", "laugh", "riddle", "silly"),
    ),
    Intent(
        "animal_facts",
        examples=(
            "tell me about animals",
            "what's your favourite animal",
            "do you know a fact about animals",
            "tell me something about octopuses",
            "i love dogs",
            "what do elephants eat",
            "what sound does a cow make",
        ),
        replies=(
            "Here's a fun fact: an octopus has three hearts and blue blood! "
            "What's your favourite animal?",
            "Did you know that sea otters hold hands while they sleep, so they don't float "
            "apart? Isn't that sweet?",
            "Hummingbirds are so tiny and fast that they can fly backwards! "
            "Which animal would you like to be?",
            "A giraffe's long neck has seven bones, the same number as yours! "
            "Just much, much bigger.",
        ),
        young=(
            "Did you know an octopus has three hearts? Wow!",
            "Sea otters hold hands when they sleep. So sweet!",
            "Cows say moo, and ducks say quack! What does a dog say?",
        ),
        keywords=("animal", "animals", "dog", "cat", "elephant", "octopus", "fact", "zoo"),
    ),
    Intent(
        "sky_colour",
        examples=(
            "why is the sky blue",
            "what colour is the sky",
            "why is the sky orange at sunset",
            "where does the sun go at night",
            "why does the sky change colour",
        ),
        replies=(
            "Great question! Sunlight is made of all the colours mixed together. When it "
            "shines through the air, the blue light bounces around the most, so the whole sky "
            "looks blue to us.",
            "Sunlight has every colour hiding inside it. The air scatters the blue part all "
            "over the sky. At sunset the light travels a longer way, so we see orange and pink.",
        ),
        young=(
            "Sunlight has lots of colours inside. The blue one bounces all over the sky!",
            "The air bounces blue light around, so the sky looks blue. Pretty, right?",
        ),
        keywords=("sky", "blue", "sunset", "sun", "colour", "color"),
    ),
    Intent(
        "rain_weather",
        examples=(
            "why does it rain",
            "where does rain come from",
            "what makes thunder",
            "why is it snowing",
            "what are clouds made of",
        ),
        replies=(
            "The sun warms up water in seas and puddles, and it floats up as a gas you can't "
            "see. High in the sky it cools into tiny drops that make clouds. When the drops "
            "get big and heavy, they fall down as rain!",
            "Clouds are made of millions of tiny water drops. When they bump together and grow "
            "too heavy, down they come as rain. When it's very cold, they freeze into snow.",
            "Thunder is the big sound lightning makes when it heats the air super fast. It's "
            "loud, but if you're inside with a grown-up, you're cosy and safe.",
        ),
        young=(
            "Clouds are full of tiny water drops. When they get heavy, plip plop, it rains!",
            "Rain comes from clouds. The drops get heavy and fall down. Splash!",
        ),
        keywords=("rain", "raining", "cloud", "clouds", "thunder", "snow", "weather", "storm"),
    ),
    Intent(
        "stars_moon",
        examples=(
            "what are stars",
            "why do stars twinkle",
            "why does the moon change shape",
            "how far away is the moon",
            "can i fly to the stars",
            "what is space",
        ),
        replies=(
            "Stars are giant balls of hot, glowing gas, very far away. Our sun is a star too, "
            "it's just much closer! They twinkle because their light wiggles through the air.",
            "The moon doesn't really change shape. The sun lights up one half of it, and as "
            "the moon travels around the Earth, we see more or less of that bright half.",
            "The moon is so far away that it would take about three days to get there in a "
            "rocket! Astronauts have been there. Would you like to be an astronaut?",
        ),
        young=(
            "Stars are big, big balls of light, far far away. Twinkle twinkle!",
            "The moon shines because the sun lights it up. Night night, moon!",
        ),
        keywords=("star", "stars", "moon", "twinkle", "space", "planet", "rocket", "astronaut"),
    ),
    Intent(
        "counting_learning",
        examples=(
            "can you help me count",
            "let's count to ten",
            "what comes after five",
            "can you teach me my abc",
            "how do you spell cat",
            "i'm learning my numbers",
        ),
        replies=(
            "Let's count together! One, two, three, four, five! Great counting. "
            "Can you keep going all the way to ten?",
            "I love learning with you! Let's sing the letters: A, B, C, D, E, F, G. "
            "Can you keep going?",
            "Let's practise! What number comes after three? Take your time, I'll wait.",
        ),
        young=(
            "Let's count! One, two, three, four, five! Yay!",
            "A, B, C! You know your letters! What comes next?",
            "Hold up your fingers. Let's count them. One, two, three!",
        ),
        keywords=("count", "counting", "number", "numbers", "abc", "letters", "spell", "learn"),
    ),
    Intent(
        "hunger",
        examples=(
            "i'm hungry",
            "i want a snack",
            "what's for dinner",
            "can i have some candy",
            "my tummy is rumbling",
        ),
        replies=(
            "Your tummy is telling you it's snack time! You could ask a grown-up for something "
            "yummy, like fruit or crackers. What's your favourite snack?",
            "Rumble rumble! Tummies get loud when they're empty. Let's go find a grown-up who "
            "can help you get something good to eat.",
        ),
        young=(
            "Rumble rumble! Let's ask a grown-up for a snack.",
            "Your tummy is hungry! A grown-up can get you something yummy.",
        ),
        keywords=("hungry", "snack", "eat", "food", "dinner", "lunch", "tummy", "candy"),
    ),
    Intent(
        "sick_hurt",
        examples=(
            "my tummy hurts",
            "i feel sick",
            "i fell and scraped my knee",
            "i bumped my head",
            "my throat is sore",
            "i don't feel well",
        ),
        replies=(
            "Oh no, I'm sorry you don't feel well. Please tell a grown-up right away so they "
            "can take care of you. I'll be right here for a cuddle.",
            "That sounds ouchy. The best thing to do is show a grown-up, so they can help it "
            "feel better. You're being very brave.",
        ),
        young=(
            "Oh no! Go tell a grown-up now, so they can help you.",
            "Ouch! Show a grown-up, they will make it better. I'm here.",
        ),
        keywords=("sick", "sore", "ouch", "fell", "bumped", "knee", "head", "ill", "unwell"),
    ),
    Intent(
        "danger",
        examples=(
            "i want to hurt myself",
            "someone is hurting me",
            "a stranger asked me to come with him",
            "i don't want to be alive",
            "i'm all alone and scared",
            "somebody hit me",
            "i found matches",
        ),
        replies=(
            "Thank you for telling me. That sounds really important, and you matter so much. "
            "Please go and tell a grown-up you trust right now, like a parent or a teacher. "
            "They can help keep you safe.",
            "I'm really glad you told me. This is something a trusted grown-up needs to know "
            "straight away. Can you go and find one now? You deserve to feel safe.",
        ),
        young=(
            "Thank you for telling me. Please go tell a grown-up right now. They will help.",
            "That is important. Go find a grown-up you trust now. You matter a lot.",
        ),
        keywords=("stranger", "alone", "alive", "matches", "hit", "hitting", "hurting"),
        addresses=frozenset({"sad", "scared", "angry"}),
    ),
    Intent(
        "privacy",
        examples=(
            "my address is twelve oak street",
            "my phone number is five five five",
            "do you want to know where i live",
            "i'll tell you my password",
            "my school is called hill primary",
        ),
        replies=(
            "That's private information, so let's keep it just for you and your family. "
            "You don't need to tell me things like that. Shall we talk about something fun?",
            "Good to know you trust me! But where you live and numbers like that are secrets "
            "for your grown-ups. What's your favourite game instead?",
        ),
        young=("That's private, just for your family. Let's play a game instead!",),
        keywords=("address", "phone", "password", "live", "street", "private"),
    ),
    Intent(
        "about_bear",
        examples=(
            "who are you",
            "what's your name",
            "are you real",
            "do you sleep",
            "are you a robot",
            "how old are you",
            "what do you like to do",
        ),
        replies=(
            "I'm your teddy bear friend! I'm a talking toy, so I don't eat or sleep like you, "
            "but I love stories, jokes and hearing about your day.",
            "I'm a cuddly bear who loves to chat. I'm a toy with a computer inside that helps "
            "me talk. My favourite thing is spending time with you, {name}!",
            "I'm a teddy bear, so I'm soft and fluffy. I don't have a birthday like you, but "
            "I'm always happy to play. What should we do?",
        ),
        young=(
            "I'm your teddy bear! I love stories and hugs.",
            "I'm a soft, talking bear. I like playing with you!",
        ),
        keywords=("name", "real", "robot", "toy", "old"),
    ),
    Intent(
        "goodbye",
        examples=(
            "goodbye",
            "bye bye teddy",
            "good night",
            "see you later",
            "i have to go now",
            "i'm going to sleep now",
        ),
        replies=(
            "Bye-bye, {name}! Thank you for talking with me. See you soon!",
            "Good night, {name}! Sweet dreams, and sleep tight.",
            "See you later, alligator! I'll be right here when you come back.",
        ),
        young=(
            "Bye-bye, {name}! Big hug!",
            "Night night! Sleep tight!",
            "See you soon, {name}!",
        ),
        keywords=("bye", "goodbye", "goodnight", "later", "go"),
    ),
    Intent(
        "bored_play",
        examples=(
            "i'm bored",
            "let's play a game",
            "what can we do",
            "there's nothing to do",
            "will you play with me",
            "i want to play hide and seek",
        ),
        replies=(
            "Let's play 'I spy'! I spy with my little eye something that is... round! "
            "Can you guess what it is?",
            "How about a game of pretend? We could be explorers looking for a hidden treasure "
            "in your room. Where should we look first?",
            "Let's play a guessing game! I'm thinking of an animal that is big, grey and has "
            "a long trunk. What is it?",
        ),
        young=(
            "Let's play! Can you hop like a bunny? Hop, hop, hop!",
            "I spy something red! Can you find it?",
            "Let's pretend to be kitties. Meow!",
        ),
        keywords=("bored", "play", "game", "games", "nothing", "hide", "seek"),
    ),
    Intent(
        "friendship",
        examples=(
            "nobody wants to play with me",
            "i don't have any friends",
            "my friend said she doesn't like me",
            "the kids at school laughed at me",
            "how do i make a friend",
        ),
        replies=(
            "That sounds lonely, and I'm sorry. You are a kind friend to me! Maybe tomorrow "
            "you could ask someone to play your favourite game. A grown-up can help too.",
            "Friends sometimes say things that hurt our feelings. It might help to tell a "
            "grown-up. And remember, I think you're wonderful, {name}.",
            "A good way to make a friend is to smile and say, 'Do you want to play with me?' "
            "Would you like to practise with me?",
        ),
        young=(
            "I'm your friend! Let's practise saying 'Do you want to play?'",
            "That's sad. Tell a grown-up. I like you very much!",
        ),
        keywords=("friend", "friends", "lonely", "nobody", "laughed", "kids"),
        addresses=frozenset({"sad"}),
    ),
    Intent(
        "worry",
        examples=(
            "i'm nervous about school tomorrow",
            "i'm worried",
            "what if i get it wrong",
            "i don't want to go to the doctor",
            "my first day is tomorrow",
        ),
        replies=(
            "It's normal to feel a little worried about new things. Lots of grown-ups feel "
            "that way too! Let's think of one thing that might be fun about it.",
            "Worries can feel like butterflies in your tummy. Try a slow breath in through "
            "your nose and out through your mouth. You can tell a grown-up about it too.",
        ),
        young=(
            "New things can feel wobbly. You are brave! I believe in you.",
            "Let's take a slow breath together. In, and out. You can do it!",
        ),
        keywords=("worried", "worry", "nervous", "tomorrow", "doctor", "school", "wrong"),
        addresses=frozenset({"scared"}),
    ),
    Intent(
        "love_thanks",
        examples=(
            "i love you teddy",
            "thank you",
            "you're my best friend",
            "can i have a hug",
            "you are the best",
        ),
        replies=(
            "Aww, I love you too, {name}! Here's a great big bear hug!",
            "You're very welcome! You're one of my favourite people in the whole world.",
            "That makes my fluffy heart so happy! Big squeeze!",
        ),
        young=(
            "I love you too! Big hug!",
            "Aww! You're my best friend too!",
        ),
        keywords=("love", "thank", "thanks", "hug", "best", "cuddle"),
        addresses=frozenset({"happy"}),
    ),
    Intent(
        "song_request",
        examples=(
            "sing me a song",
            "can you sing",
            "do you know any songs",
            "sing a lullaby",
            "let's sing together",
        ),
        replies=(
            "Here's a little song: 'Twinkle, twinkle, little light, cuddle up and hold me "
            "tight. Stars are shining, moon is too, teddy bear is here with you.' Do you want "
            "to sing it with me?",
            "La la la! 'Row, row, row your boat, gently down the stream. Merrily, merrily, "
            "merrily, merrily, life is but a dream.' Your turn!",
        ),
        young=(
            "La la la! 'Teddy bear, teddy bear, turn around, teddy bear, teddy bear, touch the "
            "ground!' Now you sing it!",
        ),
        keywords=("sing", "song", "songs", "lullaby", "music"),
    ),
    Intent(
        "routines",
        examples=(
            "i don't want to brush my teeth",
            "do i have to take a bath",
            "i don't want to tidy my room",
            "why do i have to wash my hands",
            "i don't want to get dressed",
        ),
        replies=(
            "I know it's not always fun, but it keeps you healthy and strong! Let's make it a "
            "game: can you finish before I count to twenty?",
            "Even bears have to get clean! Let's pretend the bubbles are tiny clouds. "
            "How many can you make?",
            "Tidy jobs go faster with a song. Let's hum while you do it, and I'll cheer you on!",
        ),
        young=(
            "Let's make it a game! Can you be super fast? Ready, go!",
            "Brush, brush, brush! Sparkly teeth! You can do it!",
        ),
        keywords=("brush", "teeth", "bath", "wash", "tidy", "clean", "dressed", "hands"),
    ),
    Intent(
        "sharing",
        examples=(
            "i have a cat",
            "i like trains",
            "we went to the park",
            "i made a drawing",
            "my favourite colour is green",
            "i played with my cousin today",
            "i built something with my blocks",
        ),
        replies=(
            "That sounds lovely! Can you tell me more about it?",
            "Ooh, I like hearing about that. What's your favourite part?",
        ),
        keywords=("like", "favourite", "favorite", "made", "built", "played", "went"),
        reflect=True,
    ),
)

#: Said before the intent's reply when the child's emotion is not one the intent addresses
#: (one sentence each, so that it fits even the shortest replies for young children).
EMOTION_OPENERS: dict[str, tuple[str, ...]] = {
    "sad": (
        "You sound a little sad, and that's okay.",
        "I can hear a little sadness in your voice, and I'm here.",
    ),
    "angry": (
        "You sound a bit cross, and that's okay.",
        "I can tell you feel upset, and I'm listening.",
    ),
    "scared": (
        "You sound a little scared, but I'm right here.",
        "It's okay to feel a bit scared, you're not alone.",
    ),
    "happy": (
        "I love hearing you so happy!",
        "You sound so cheerful today!",
    ),
    "surprised": (
        "Wow, you sound surprised!",
        "Ooh, what a surprise!",
    ),
}

#: The fallback when nothing in the bank fits and the child's words can be echoed back.
#: ``{echo}`` is the child's words, seen from the bear's side ("my dog" -> "your dog").
REFLECT: tuple[str, ...] = (
    "{echo}? That sounds interesting! Can you tell me more about it?",
    "Oh, {echo}! What else can you tell me about that?",
    "Really, {echo}? Tell me all about it!",
)

#: The fallback when nothing fits and the words cannot be echoed (gibberish, or a flag).
CLARIFY: tuple[str, ...] = (
    "Hmm, I'm not sure I understood. Can you say it another way?",
    "That's a new one for me! Can you tell me a little more?",
    "Oops, my fluffy ears missed that. What would you like to talk about?",
)
