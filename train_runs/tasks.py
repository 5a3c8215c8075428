"""Verifiable tasks for the miniature: seeded generators, one answer format, one extractor.

Every item reads `Q: <question> A:` (the prompt) and ` <working> #### <answer>` (the completion), so the same
`extract_answer` scores SFT targets, RL rewards and every evaluation. Answers are always integers: a model
fine-tuned on math only can emit them, so out-of-domain scores measure transfer rather than a format gap
(a prototype with yes/no words scored 0% because the math model only ever wrote numbers). Yes/no style
questions therefore state their numeric code in the question ("1 = yes, 0 = no").

In-domain (math):  arith      1-2 steps, single-digit operands            (the main task)
                   multistep  3-4 chained steps, single-digit operands
                   check      is a sum / parity claim true? 1 = yes, 0 = no  (10% of SFT: teaches the code) -> 50%
Out-of-domain:     code       trace a tiny Python function (CRUXEval-like)  open number  -> chance 0%
                   logic      facts + rules, proved/disproved/unknown (BoardgameQA-like) 3 codes -> 33.3%
                   table      look up / combine cells of a table (TabMWP-like)  open number -> chance 0%
                   yesno      compare two quantities (StrategyQA-like), balanced 1/0     -> chance 50%

Train and evaluation items come from disjoint random streams *and* disjoint name lists, so no evaluation
question can occur in any training text (tests/test_train_data.py checks the generated sets).
"""

from __future__ import annotations

import dataclasses
import random
import re

from dynsim.errors import UserError

TASKS_VERSION = "tasks/3"  # bump when a generator changes: it is part of every run's data hash
ANSWER_MARK = "####"

# Disjoint name lists: a training question can never equal an evaluation question.
TRAIN_NAMES = ("Ava", "Ben", "Cora", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo",
               "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Vic", "Wes", "Xena", "Yuri", "Zoe",
               "Abe", "Bea", "Cal", "Dee", "Ezra", "Flo", "Gil", "Ida", "Jon", "Kim", "Leo", "Mae", "Ned", "Ola")
EVAL_NAMES = ("Anna", "Bruno", "Clara", "Diego", "Elsa", "Felix", "Greta", "Hugo", "Iris", "Jonas", "Karla",
              "Luca", "Marta", "Nils", "Olga", "Pablo", "Rita", "Sven", "Tina", "Viktor")
assert not set(TRAIN_NAMES) & set(EVAL_NAMES)
OBJECTS = ("apples", "pens", "books", "coins", "cards", "eggs", "shells", "stamps", "marbles", "cookies", "rocks",
           "toys", "cups", "hats", "flowers", "stickers", "balls", "candles")
FUNCTIONS_TRAIN = ("f", "g", "h", "calc", "step")  # code tracing has no people in it: its function names split it
FUNCTIONS_EVAL = ("fn", "work", "solve", "apply")
ANIMALS_TRAIN = ("cat", "dog", "owl", "fox", "bee", "cow", "eel", "yak", "ant", "bat", "pig", "hen")
ANIMALS_EVAL = ("lion", "wolf", "frog", "duck", "goat", "mole", "seal", "crab")
COLORS = ("red", "blue", "green", "black", "white")
ACTIONS = ("helps", "chases", "visits", "trusts", "follows")


@dataclasses.dataclass(frozen=True)
class Item:
    task: str
    question: str
    working: str
    answer: int

    @property
    def prompt(self) -> str:
        return f"Q: {self.question} A:"

    @property
    def completion(self) -> str:
        return f" {self.working} {ANSWER_MARK} {self.answer}"

    @property
    def text(self) -> str:
        return self.prompt + self.completion


_ANSWER = re.compile(ANSWER_MARK + r"\s*(-?\d+)")


def extract_answer(text: str) -> int | None:
    """The integer after the first '####' in a completion, or None if there is none."""
    m = _ANSWER.search(text)
    return int(m.group(1)) if m else None


def is_correct(completion: str, item: Item) -> bool:
    return extract_answer(completion) == item.answer


# -- in-domain: arithmetic word problems ------------------------------------------------------------
def _arith(rng: random.Random, names) -> Item:
    """1-2 steps with single-digit operands; results stay non-negative."""
    n, obj = rng.choice(names), rng.choice(OBJECTS)
    a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 9)
    kind = rng.randrange(6)
    if kind == 0:
        q = f"{n} has {a} {obj} and gets {b} more. How many {obj} does {n} have now?"
        return Item("arith", q, f"{a} + {b} = {a + b}.", a + b)
    if kind == 1:
        a, b = max(a, b), min(a, b)
        q = f"{n} has {a} {obj} and gives away {b}. How many {obj} does {n} have left?"
        return Item("arith", q, f"{a} - {b} = {a - b}.", a - b)
    if kind == 2:
        q = f"{n} buys {a} bags with {b} {obj} in each bag. How many {obj} is that?"
        return Item("arith", q, f"{a} * {b} = {a * b}.", a * b)
    if kind == 3:
        q = f"{n} has {a} {obj}, gets {b} more and then gets {c} more. How many {obj} does {n} have?"
        return Item("arith", q, f"{a} + {b} = {a + b}. {a + b} + {c} = {a + b + c}.", a + b + c)
    if kind == 4:
        c = rng.randint(1, min(9, a + b))
        q = f"{n} has {a} {obj}, gets {b} more and then loses {c}. How many {obj} does {n} have?"
        return Item("arith", q, f"{a} + {b} = {a + b}. {a + b} - {c} = {a + b - c}.", a + b - c)
    q = f"{n} has {a} boxes of {b} {obj} and {c} loose {obj}. How many {obj} does {n} have in all?"
    return Item("arith", q, f"{a} * {b} = {a * b}. {a * b} + {c} = {a * b + c}.", a * b + c)


def _multistep(rng: random.Random, names) -> Item:
    """3-4 chained operations on one quantity; every operand is a single digit."""
    n, obj = rng.choice(names), rng.choice(OBJECTS)
    x = rng.randint(1, 9)
    sentences, steps = [f"{n} starts with {x} {obj}."], []
    for _ in range(rng.randint(3, 4)):
        op = rng.choice("+-*") if x <= 30 else rng.choice("+-")
        if op == "-" and x == 0:
            op = "+"
        b = rng.randint(1, min(9, x)) if op == "-" else rng.randint(2, 3) if op == "*" else rng.randint(1, 9)
        y = x + b if op == "+" else x - b if op == "-" else x * b
        sentences.append({"+": f"Then {n} finds {b} more.", "-": f"Then {n} gives {b} away.",
                          "*": f"Then the number of {obj} is multiplied by {b}."}[op])
        steps.append(f"{x} {op} {b} = {y}.")
        x = y
    q = " ".join(sentences) + f" How many {obj} does {n} have at the end?"
    return Item("multistep", q, " ".join(steps), x)


def _check(rng: random.Random, names) -> Item:
    """Yes/no checks of a math claim, answered with the 1/0 code that the OOD yes/no questions use.

    Mixed into SFT at a small share (recipe: 10%) so that a math-only model has seen a coded answer at all:
    without it, a prototype answered every yes/no question with a sum (0%, below the 50% chance).
    """
    n, obj = rng.choice(names), rng.choice(OBJECTS)
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    if rng.randrange(2):
        claim = a + b if rng.random() < 0.5 else a + b + rng.choice((-2, -1, 1, 2))
        q = f"{n} has {a} {obj} and gets {b} more. Does {n} have {claim} {obj} now? Answer 1 for yes, 0 for no."
        return Item("check", q, f"{a} + {b} = {a + b}.", int(claim == a + b))
    x = a * b
    q = f"{n} has {a} bags with {b} {obj} in each bag. Is the number of {obj} even? Answer 1 for yes, 0 for no."
    return Item("check", q, f"{a} * {b} = {x}. {x} is {'even' if x % 2 == 0 else 'odd'}.", int(x % 2 == 0))


# -- out-of-domain ----------------------------------------------------------------------------------
def _code(rng: random.Random, names) -> Item:
    """Trace a tiny Python function (CRUXEval-like: predict the output)."""
    f = rng.choice(FUNCTIONS_EVAL if names is EVAL_NAMES else FUNCTIONS_TRAIN)
    a, b, x = rng.randint(1, 9), rng.randint(2, 5), rng.randint(1, 9)
    kind = rng.randrange(4)
    if kind == 0:
        src = f"def {f}(x):\n    y = x + {a}\n    return y * {b}"
        return Item("code", f"{src}\nWhat is {f}({x})?", f"y = {x} + {a} = {x + a}. {x + a} * {b} = {(x + a) * b}.", (x + a) * b)
    if kind == 1:
        n = rng.randint(2, 6)
        s = sum(range(n))
        src = f"def {f}(n):\n    s = {a}\n    for i in range(n):\n        s = s + i\n    return s"
        return Item("code", f"{src}\nWhat is {f}({n})?", f"{a} + 0 + ... + {n - 1} = {a + s}.", a + s)
    xs = [rng.randint(0, 9) for _ in range(rng.randint(3, 5))]
    if kind == 2:
        src = f"def {f}(xs):\n    return max(xs) - min(xs)"
        return Item("code", f"{src}\nWhat is {f}({xs})?", f"{max(xs)} - {min(xs)} = {max(xs) - min(xs)}.", max(xs) - min(xs))
    src = f"def {f}(xs):\n    return len(xs) + xs[0]"
    return Item("code", f"{src}\nWhat is {f}({xs})?", f"{len(xs)} + {xs[0]} = {len(xs) + xs[0]}.", len(xs) + xs[0])


def _logic(rng: random.Random, names) -> Item:
    """Facts and rules (BoardgameQA-like); the answer is 1 proved, 0 disproved, 2 unknown (balanced)."""
    animals = ANIMALS_EVAL if names is EVAL_NAMES else ANIMALS_TRAIN
    a, b, c = rng.sample(animals, 3)
    color, other = rng.sample(COLORS, 2)
    act = rng.choice(ACTIONS)
    label = rng.randrange(3)
    fact = f"The {a} is {color}."
    if label == 1:  # the rule fires
        rule = f"If the {a} is {color}, then the {a} {act} the {b}."
    elif label == 0:  # the rule fires and says the opposite
        rule = f"If the {a} is {color}, then the {a} does not {act[:-1]} the {b}."
    else:  # the rule's condition is not met, nothing is known
        rule = f"If the {a} is {other}, then the {a} {act} the {b}."
    distractor = f"If the {c} is {other}, then the {c} {act} the {a}."
    rules = [rule, distractor]
    rng.shuffle(rules)
    q = (f"Facts: {fact} Rules: {' '.join(rules)} Does the {a} {act[:-1]} the {b}? "
         f"Answer 1 if proved, 0 if disproved, 2 if unknown.")
    working = {1: "The rule applies, so it is proved.", 0: "The rule applies and says no, so it is disproved.",
               2: "No rule applies, so it is unknown."}[label]
    return Item("logic", q, working, label)


def _table(rng: random.Random, names) -> Item:
    """Read a small table (TabMWP-like)."""
    people = rng.sample(names, 3)
    obj = rng.choice(OBJECTS)
    counts = [rng.randint(1, 9) for _ in people]
    table = "Table: name | " + obj + " ; " + " ; ".join(f"{p} | {c}" for p, c in zip(people, counts))
    i, j = rng.sample(range(3), 2)
    kind = rng.randrange(3)
    if kind == 0:
        q = f"{table}. How many {obj} do {people[i]} and {people[j]} have together?"
        return Item("table", q, f"{counts[i]} + {counts[j]} = {counts[i] + counts[j]}.", counts[i] + counts[j])
    if kind == 1:
        q = f"{table}. How many {obj} does {people[i]} have?"
        return Item("table", q, f"{people[i]} has {counts[i]}.", counts[i])
    q = f"{table}. How many {obj} are in the table in total?"
    return Item("table", q, f"{' + '.join(map(str, counts))} = {sum(counts)}.", sum(counts))


def _yesno(rng: random.Random, names) -> Item:
    """Compare two quantities (StrategyQA-like yes/no); balanced 1 = yes, 0 = no."""
    p, r = rng.sample(names, 2)
    obj = rng.choice(OBJECTS)
    want_yes = rng.random() < 0.5
    a, b = rng.sample(range(1, 10), 2)  # distinct, so "more" is never a tie
    if (a > b) != want_yes:
        a, b = b, a
    q = f"{p} has {a} {obj} and {r} has {b} {obj}. Does {p} have more {obj} than {r}? Answer 1 for yes, 0 for no."
    return Item("yesno", q, f"{a} {'>' if a > b else '<'} {b}.", int(a > b))


GENERATORS = {"arith": _arith, "multistep": _multistep, "check": _check, "code": _code, "logic": _logic, "table": _table, "yesno": _yesno}
KIND = {"arith": "ID", "multistep": "ID", "check": "ID", "code": "OOD", "logic": "OOD", "table": "OOD", "yesno": "OOD"}
CHANCE = {"arith": 0.0, "multistep": 0.0, "check": 50.0, "code": 0.0, "logic": 100 / 3, "table": 0.0, "yesno": 50.0}  # percent
ID_TASKS = tuple(t for t, k in KIND.items() if k == "ID")
OOD_TASKS = tuple(t for t, k in KIND.items() if k == "OOD")
SPLITS = ("train", "eval")


def make_items(task: str, split: str, n: int, seed: int = 0, stream: str = "") -> list[Item]:
    """n items of one task from one split's random stream; evaluation items are unique questions.

    `stream` separates independent training uses (SFT examples, RL prompts, CPT text) of the same split.
    """
    if task not in GENERATORS:
        raise UserError(f"unknown task '{task}': expected one of {', '.join(GENERATORS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split '{split}': expected 'train' or 'eval'")
    names = TRAIN_NAMES if split == "train" else EVAL_NAMES
    rng = random.Random(f"{TASKS_VERSION}/{task}/{split}/{stream}/{seed}")
    if split == "train":
        return [GENERATORS[task](rng, names) for _ in range(n)]
    items, seen = [], set()
    for _ in range(200 * n + 1000):  # unique eval questions; the spaces are large, this never runs dry
        if len(items) == n:
            break
        item = GENERATORS[task](rng, names)
        if item.question not in seen:
            seen.add(item.question)
            items.append(item)
    if len(items) < n:
        raise UserError(f"task '{task}' has fewer than {n} distinct evaluation items")
    return items


def make_mixture(weights: dict[str, float], split: str, n: int, seed: int = 0, stream: str = "") -> list[Item]:
    """n items drawn from several tasks in the given proportions (exact counts, interleaved by a seeded shuffle)."""
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise UserError(f"task weights must be non-negative with a positive sum, got {weights}")
    names = sorted(weights)
    counts = {t: int(n * weights[t] / total) for t in names}
    for t in names[: n - sum(counts.values())]:  # hand out the rounding remainder
        counts[t] += 1
    items = [it for t in names for it in make_items(t, split, counts[t], seed, stream)]
    random.Random(f"mix/{split}/{stream}/{seed}").shuffle(items)
    return items
