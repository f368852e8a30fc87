import pytest

from models.text_normalize import is_narration_style, normalize_text


@pytest.mark.parametrize(
    "raw,clean",
    [
        # The camera wearer opening the sentence is the implicit "I" of every question: dropped.
        ("#C C puts the keys on the table", "puts the keys on the table"),
        ("#c c picks a cup from the sink.", "picks a cup from the sink"),
        ("#C picks a bag of clothes from the floor", "picks a bag of clothes from the floor"),
        ("# C C opens the fridge", "opens the fridge"),
        ("#C Cuts the onion", "cuts the onion"),  # "Cuts" is a word, not the "C" of "#C C"
        # Elsewhere the camera wearer is "me".
        ("#O man X hands #C C a cup", "man hands me a cup"),
        # Other people keep an explicit subject, so they stay distinguishable from the camera wearer.
        ("#O man X opens the door", "man opens the door"),
        ("#O X opens the door", "someone opens the door"),
        ("#o woman Y cuts the onion", "woman cuts the onion"),
        ("#O A man X sits on a chair", "a man sits on a chair"),
        ("#O person A gives #C C the knife", "person gives me the knife"),
        ("#C C talks to X", "talks to someone"),
        # Annotator tags carry nothing about the scene.
        ("#unsure", ""),
        ("#C C looks around #unsure", "looks around"),
        ("#C C picks #Unsure from the table", "picks from the table"),
        ("#summary C cooks in the kitchen", "c cooks in the kitchen"),
        # Plain questions: only case, spacing and trailing punctuation change; letters stay words.
        ("Where did I put my keys?", "where did i put my keys"),
        ("  Did I use plan   B? ", "did i use plan b"),
        ("What X did I Y?", "what x did i y"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_text(raw, clean):
    assert normalize_text(raw) == clean


def test_narration_style_detection():
    assert is_narration_style("#C C picks a cup") and is_narration_style("#O man X walks")
    assert not is_narration_style("Where is my cup?") and not is_narration_style("#unsure")
    assert not is_narration_style("#Cup")


def test_normalising_twice_changes_nothing():
    for text in ["#C C puts the keys on the table.", "#O X opens the door", "Where did I put my keys?"]:
        once = normalize_text(text)
        assert normalize_text(once) == once
