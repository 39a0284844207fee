"""The text the fake backend lends the stages' fake answers: word lists (varied enough for
thousands of distinct instructions that pass the ROUGE-L filter) and what is made of them."""

from __future__ import annotations

import random
from collections.abc import Sequence

VERBS = (
    "Write",
    "Compose",
    "Draft",
    "Create",
    "Describe",
    "Explain",
    "Summarize",
    "Outline",
    "Suggest",
    "List",
    "Compare",
    "Rewrite",
    "Design",
    "Plan",
    "Propose",
    "Generate",
    "Translate",
    "Evaluate",
    "Critique",
    "Recommend",
    "Brainstorm",
    "Sketch",
    "Prepare",
    "Analyze",
    "Estimate",
    "Identify",
    "Classify",
    "Rank",
    "Invent",
    "Imagine",
    "Argue",
    "Justify",
    "Predict",
    "Simplify",
    "Expand",
    "Paraphrase",
    "Illustrate",
    "Teach",
    "Review",
    "Format",
)
FORMS = (
    "poem",
    "story",
    "letter",
    "email",
    "speech",
    "essay",
    "recipe",
    "checklist",
    "guide",
    "slogan",
    "tweet",
    "headline",
    "dialogue",
    "riddle",
    "limerick",
    "quiz",
    "lesson plan",
    "itinerary",
    "budget",
    "schedule",
    "review",
    "report",
    "memo",
    "proposal",
    "toast",
    "jingle",
    "fable",
    "interview",
    "lecture",
    "glossary",
    "timeline",
    "manifesto",
    "advertisement",
    "apology",
    "invitation",
    "obituary",
    "horoscope",
    "press release",
    "product description",
    "cover letter",
)
ADJECTIVES = (
    "short",
    "funny",
    "formal",
    "friendly",
    "persuasive",
    "detailed",
    "concise",
    "playful",
    "serious",
    "dramatic",
    "gentle",
    "practical",
    "creative",
    "honest",
    "optimistic",
    "skeptical",
    "nostalgic",
    "technical",
    "whimsical",
    "polite",
    "bold",
    "calm",
    "curious",
    "warm",
    "vivid",
    "crisp",
    "balanced",
    "thoughtful",
    "surprising",
    "cheerful",
)
TOPICS = (
    "volcanoes",
    "honeybees",
    "tax returns",
    "submarines",
    "jazz history",
    "compost",
    "tidal energy",
    "chess openings",
    "sourdough bread",
    "marathon training",
    "urban gardens",
    "black holes",
    "medieval castles",
    "coral reefs",
    "electric bicycles",
    "public libraries",
    "sleep hygiene",
    "remote work",
    "origami",
    "desert plants",
    "glaciers",
    "bird migration",
    "vaccines",
    "solar panels",
    "board games",
    "recycling plastics",
    "ancient Rome",
    "quantum computing",
    "street food",
    "mountain hiking",
    "credit scores",
    "wind turbines",
    "vintage cars",
    "meditation",
    "kitchen knives",
    "rainforests",
    "podcasting",
    "lighthouses",
    "space telescopes",
    "tea ceremonies",
    "fossil hunting",
    "beekeeping",
    "city parks",
    "typewriters",
    "river dolphins",
    "hot air balloons",
    "snowboarding",
    "folk music",
    "pottery",
    "wildfires",
    "cryptography",
    "dinosaurs",
    "paper money",
    "houseplants",
    "bridges",
    "the printing press",
    "octopuses",
    "camping stoves",
    "thunderstorms",
    "violin making",
)
AUDIENCES = (
    "children",
    "teenagers",
    "retirees",
    "new employees",
    "tourists",
    "nurses",
    "engineers",
    "first-time parents",
    "college students",
    "small business owners",
    "farmers",
    "software developers",
    "teachers",
    "athletes",
    "musicians",
    "chefs",
    "pilots",
    "librarians",
    "volunteers",
    "beginners",
    "experts",
    "investors",
    "voters",
    "gardeners",
)
CONSTRAINTS = (
    "in under fifty words",
    "using three bullet points",
    "without using the letter e",
    "in the style of a sports commentator",
    "as a numbered list",
    "in exactly four lines",
    "with a surprising twist at the end",
    "using simple vocabulary",
    "in a single paragraph",
    "with one concrete example",
    "as a table with two columns",
    "in the second person",
    "with a catchy title",
    "ending with a question",
    "mentioning a historical fact",
    "in a cheerful tone",
    "with a short summary first",
    "using an analogy",
    "and give two reasons",
    "including a safety tip",
)
LABEL_SETS = (
    ("positive", "negative"),
    ("yes", "no"),
    ("true", "false"),
    ("spam", "not spam"),
    ("formal", "informal"),
    ("fact", "opinion"),
    ("urgent", "not urgent"),
    ("sports", "politics", "science"),
    ("easy", "medium", "hard"),
    ("question", "statement"),
)
FIELDS = ("Sentence", "Paragraph", "Text", "Email", "Review", "Question", "Message")
FILLER = (
    "the",
    "team",
    "finished",
    "report",
    "after",
    "lunch",
    "and",
    "everyone",
    "was",
    "happy",
    "with",
    "result",
    "weather",
    "turned",
    "cold",
    "so",
    "we",
    "stayed",
    "inside",
    "museum",
    "opens",
    "at",
    "nine",
    "every",
    "morning",
    "price",
    "of",
    "coffee",
    "rose",
    "again",
    "this",
    "week",
    "my",
    "neighbor",
    "plays",
    "piano",
    "late",
    "night",
    "train",
    "arrived",
    "ten",
    "minutes",
    "early",
    "garden",
    "needs",
    "more",
    "water",
    "summer",
)


class WordSource:
    """`FakeText` (llm/fake_answers.py) drawn from one request's random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def instruction(self) -> str:
        """A new, plausible instruction; mostly distinct from every other one."""
        return instruction(self.rng)

    def flawed_instruction(self, shown: Sequence[str]) -> str:
        """Something the heuristic or ROUGE-L filters should drop (`shown`: the prompt's
        own instructions, which a model may repeat)."""
        rng = self.rng
        topic = rng.choice(TOPICS)
        options = [
            f"Draw {topic}.",
            f"Describe the image of {topic} below.",
            f"Write a program that sorts {topic}.",
            f'"Quote" something about {topic}.',
            f"Éclair recipe about {topic} for {rng.choice(AUDIENCES)}.",
        ]
        if shown:
            options.append(rng.choice(list(shown)))
        return rng.choice(options)

    def sentence(self) -> str:
        words = [self.rng.choice(FILLER) for _ in range(self.rng.randint(5, 14))]
        return " ".join(words).capitalize() + "."

    def rambling(self, words: int) -> str:
        """An item that never ends (to be cut off at max_tokens)."""
        return " ".join(self.rng.choice(FILLER) for _ in range(words))

    def field(self) -> str:
        return self.rng.choice(FIELDS)

    def label_set(self) -> Sequence[str]:
        return self.rng.choice(LABEL_SETS)


def instruction(rng: random.Random) -> str:
    """A new, plausible instruction drawn from rng."""
    verb, form = rng.choice(VERBS), rng.choice(FORMS)
    adj, topic = rng.choice(ADJECTIVES), rng.choice(TOPICS)
    audience, rule = rng.choice(AUDIENCES), rng.choice(CONSTRAINTS)
    shapes = (
        f"{verb} a {adj} {form} about {topic} for {audience}, {rule}.",
        f"{verb} how {topic} could change the daily life of {audience} {rule}.",
        f"As a {form} for {audience}, {verb.lower()} the main ideas behind {topic}.",
        f"Given a {adj} {form} about {topic}, {verb.lower()} it for {audience}.",
        f"What should {audience} know about {topic}? Answer {rule}.",
        f"{verb} three {adj} questions {audience} often ask about {topic}.",
    )
    return rng.choice(shapes)
