"""Candidate words for the project's noun/verb sets, chosen by hand for topobrain.

Four pools (concrete/abstract x noun/verb) of common English words whose part of speech
is unambiguous in ordinary use: a noun with no common verb use (``banana``, ``justice``;
not ``drink``, ``paint``, ``hope``), a verb with no common noun use, in its base form
(``chew``, ``believe``; not ``walk``, ``kick``, ``doubt``, ``peel``, ``nod``). Words
with a homograph of the other part of speech (``chair`` a meeting, ``steer`` the animal,
``sow`` the pig) are left out too. ``scripts/make_stimuli.py`` checks each pool against
the concreteness ratings of Brysbaert, Warriner & Kuperman (2014) (concrete >= 3.5,
abstract <= 2.6 on their 1-5 scale) and draws 40 words per cell matched on log
frequency and length.
"""

CONCRETE_NOUNS = """
apple banana carrot potato tomato onion lemon cherry grape melon peach cheese garlic
cabbage lettuce pumpkin sausage biscuit spoon kettle bucket basket pillow curtain window
desk sofa lamp oven fridge teapot saucer napkin towel ladder wagon tractor bicycle
airplane helmet jacket sweater shirt trousers umbrella necklace bracelet tiger lion
elephant giraffe zebra rabbit donkey horse sheep goat squirrel camel turtle spider
kitten puppy piano guitar violin trumpet river island mountain forest beach meadow
pebble kitchen garage barn cottage castle church hospital village knee tooth ankle liver
lung skull beard cup car bus hat shoe pie soup tea coffee wallet coin pearl diamond
candle glass
""".split()

ABSTRACT_NOUNS = """
idea theory truth justice freedom concept belief knowledge wisdom opinion patience
honesty courage anxiety mercy notion logic ethics loyalty faith memory attitude destiny
virtue liberty poverty charity dignity ambition grief sorrow fate religion tradition
history philosophy democracy economy ideology meaning purpose quality reality society
strategy tendency identity integrity harmony mystery origin privacy glory irony jealousy
humility morality nostalgia curiosity luck mood myth soul thought wealth peace chaos
crisis era kindness happiness sadness misery guilt boredom insight intuition essence
context aspect principle policy culture status authority genius talent vanity greed fame
hatred role joy sin zeal gist whim bliss fury ego wit tact glee angst
""".split()

CONCRETE_VERBS = """
chew stir pour sew knit carve wipe scrub squeeze fetch bend kneel sit eat bake
boil throw carry pull hang wear swim sing write grab smear sprinkle soak rinse
melt bleed breathe tickle juggle stumble tremble shiver gulp munch slurp weep knead
wring untie unwrap unzip unlock fasten bathe hurl stagger crouch wriggle squirm tiptoe
bury gallop scribble shatter scatter wade flee sneak unpack unbutton strangle
""".split()

ABSTRACT_VERBS = """
believe think forget imagine assume consider deserve suppose realize pretend understand
know remember decide prefer admire ignore forgive hesitate persuade intend suggest
convince deny seem appreciate evaluate interpret tolerate justify recognize perceive
comprehend contemplate resent despise expect define exaggerate anticipate acknowledge
infer conclude clarify emphasize predict prove disagree insist obey inspire imply learn
agree happen exist belong depend ensure allow achieve accept reveal owe tend consist
differ improve cease occur forbid refuse appear arise behave err heed deem rely cope
defy pray argue forgo cherish solve verify evoke refer adapt adopt excel reckon endure
assert compel foresee obtain yearn resolve condone enable ponder derive deduce deter
""".split()

POOLS = {
    ("noun", "concrete"): CONCRETE_NOUNS,
    ("noun", "abstract"): ABSTRACT_NOUNS,
    ("verb", "concrete"): CONCRETE_VERBS,
    ("verb", "abstract"): ABSTRACT_VERBS,
}
