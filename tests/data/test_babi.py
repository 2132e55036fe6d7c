"""The bAbI-style generator: answers and supporting facts re-derived from the text itself."""

import pytest
import torch

from deepatlas.data import split_seeds
from deepatlas.data.babi import (DROPS, MOVES, PEOPLE, PLACES, TAKES, age, babi_split, babi_task,
                                 sentence_mask, vocabulary)


def sentences(data, i):
    return [[data.vocab[w] for w in data.story[i, s].tolist() if w] for s in range(int(data.lengths[i]))]


def words(data, ids):
    return [data.vocab[w] for w in ids.tolist() if w]


def solve_task1(story, question):
    """Where the asked person went last, and the index of that sentence."""
    person = question[-1]
    moves = [(i, s[-1]) for i, s in enumerate(story) if s[0] == person]
    return moves[-1][1], [moves[-1][0]]


def solve_task2(story, question):
    """Replays the story: who holds what, where people and dropped objects are."""
    obj = question[-1]
    room, moved, holder, taken, placed = {}, {}, None, None, None
    for i, s in enumerate(story):
        person, verb = s[0], tuple(s[1:-2]) if s[-2] == "the" else None
        if s[-1] in PLACES:
            room[person], moved[person] = s[-1], i
        elif s[-1] == obj and verb in TAKES:
            holder, taken, placed = person, i, None
        elif s[-1] == obj and verb in DROPS:
            placed, holder = (room[person], sorted([moved[person], i])), None
    if holder is not None:
        return room[holder], sorted([taken, moved[holder]])
    return placed


@pytest.mark.parametrize("task, solve", [(1, solve_task1), (2, solve_task2)])
def test_answers_and_supporting_facts_follow_from_the_story(task, solve):
    data = babi_task(task, n=300, seed=3, max_sentences=12)
    for i in range(len(data)):
        story, question = sentences(data, i), words(data, data.question[i])
        answer, support = solve(story, question)
        assert data.vocab[int(data.answer[i])] == answer
        assert data.support[i].tolist() == support


def test_shapes_padding_and_sentence_forms():
    data = babi_task(1, n=50, seed=0, min_sentences=3, max_sentences=7)
    assert data.story.shape == (50, 7, 6) and data.question.shape == (50, 3)
    assert data.support.shape == (50, 1) and data.answer.shape == data.lengths.shape == (50,)
    assert 3 <= int(data.lengths.min()) and int(data.lengths.max()) <= 7
    for i in range(50):
        n = int(data.lengths[i])
        assert data.story[i, n:].eq(0).all() and data.story[i, :n, 0].ne(0).all()
        for s in sentences(data, i):
            assert s[0] in PEOPLE and s[-1] in PLACES and tuple(s[1:-2]) in MOVES and s[-2] == "the"
    assert data.vocab[0] == "<pad>" and data.vocab == vocabulary(1)


def test_questions_are_answerable_and_need_the_story():
    data = babi_task(1, n=400, seed=1)
    people = {words(data, data.question[i])[-1] for i in range(len(data))}
    assert people == set(PEOPLE)
    # the answer is not the room of the last sentence most of the time: distractors matter
    last = data.story[torch.arange(len(data)), data.lengths - 1, -1]
    assert (last != data.answer).float().mean() > 0.3


def test_same_seed_same_stories_other_seed_other_stories():
    a, b, c = babi_task(2, 40, seed=5), babi_task(2, 40, seed=5), babi_task(2, 40, seed=6)
    assert torch.equal(a.story, b.story) and torch.equal(a.answer, b.answer)
    assert not torch.equal(a.story, c.story)


def test_split_uses_split_seeds_and_keeps_test_stories_unseen():
    train, test = babi_split(1, 400, 200, seed=2, max_sentences=2, min_sentences=1)
    assert (train.meta["seed"], test.meta["seed"]) == split_seeds(2)
    seen = {(tuple(train.story[i].flatten().tolist()), tuple(train.question[i].tolist())) for i in range(len(train))}
    assert len(test) == 200
    assert all((tuple(test.story[i].flatten().tolist()), tuple(test.question[i].tolist())) not in seen
               for i in range(len(test)))
    assert train.vocab == test.vocab


def test_a_split_too_small_to_be_fresh_fails_clearly():
    with pytest.raises(ValueError, match="too few distinct test stories"):
        babi_split(1, 2000, 1000, seed=0, min_sentences=1, max_sentences=1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="task 3"):
        babi_task(3)
    with pytest.raises(ValueError, match="min_sentences"):
        babi_task(1, min_sentences=5, max_sentences=2)


def test_mask_and_age():
    data = babi_task(1, n=20, seed=0)
    mask = sentence_mask(data.story)
    assert torch.equal(mask.sum(1), data.lengths)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    assert age(mask).tolist() == [[2, 1, 0, 0], [0, 0, 0, 0]]


def test_text_shows_story_question_and_answer():
    data = babi_task(1, n=3, seed=0)
    text = data.text(0)
    assert text.startswith("0: ") and "Q: where is" in text and "A: " in text
    assert data[torch.tensor([0, 2])].story.shape[0] == 2
