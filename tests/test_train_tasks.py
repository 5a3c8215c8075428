"""Task generators, the answer format and its extractor, and train/eval separation."""

import pytest

from train_runs import tasks
from train_runs.tasks import Item, extract_answer


def test_extractor_reads_the_first_answer_after_the_mark():
    assert extract_answer(" 3 + 4 = 7. #### 7") == 7
    assert extract_answer("####-12") == -12
    assert extract_answer(" 2 * 3 = 6. ####   6 #### 9") == 6
    assert extract_answer(" 12 ") is None
    assert extract_answer("#### seven") is None
    assert extract_answer("") is None


def test_every_generated_item_is_scored_correct_by_its_own_completion():
    for task in tasks.GENERATORS:
        for split in tasks.SPLITS:
            for it in tasks.make_items(task, split, 300, seed=3):
                assert it.prompt.startswith("Q: ") and it.prompt.endswith(" A:")
                assert it.completion.endswith(f"#### {it.answer}")
                assert tasks.is_correct(it.completion, it)
                assert not tasks.is_correct(it.completion.replace(f"#### {it.answer}", f"#### {it.answer + 1}"), it)


def test_arith_uses_single_digit_operands_and_at_most_two_steps():
    for it in tasks.make_items("arith", "train", 500):
        operands = [int(w.strip(".,?")) for w in it.question.split() if w.strip(".,?").isdigit()]
        assert operands and all(0 <= x <= 9 for x in operands), it.question
        assert 1 <= it.working.count("=") <= 2
        assert it.answer >= 0


def test_multistep_chains_three_or_four_steps():
    steps = {it.working.count("=") for it in tasks.make_items("multistep", "train", 300)}
    assert steps == {3, 4}


def test_generators_are_deterministic_and_seeds_differ():
    assert tasks.make_items("code", "eval", 50) == tasks.make_items("code", "eval", 50)
    assert tasks.make_items("arith", "train", 50, seed=0) != tasks.make_items("arith", "train", 50, seed=1)
    assert tasks.make_items("arith", "train", 50, stream="sft") != tasks.make_items("arith", "train", 50, stream="rl")


def test_eval_items_are_unique():
    for task in tasks.GENERATORS:
        items = tasks.make_items(task, "eval", 300)
        assert len({it.question for it in items}) == 300


@pytest.mark.parametrize("task,codes", [("logic", {0, 1, 2}), ("yesno", {0, 1})])
def test_coded_ood_answers_are_balanced_and_match_chance(task, codes):
    items = tasks.make_items(task, "eval", 600)
    counts = {c: sum(it.answer == c for it in items) for c in codes}
    assert set(counts) == codes and all(abs(n / len(items) - 1 / len(codes)) < 0.07 for n in counts.values())
    assert tasks.CHANCE[task] == pytest.approx(100 / len(codes))


def test_ood_answers_are_plain_integers_a_math_model_can_write():
    for task in tasks.OOD_TASKS:
        for it in tasks.make_items(task, "eval", 100):
            assert isinstance(it.answer, int) and extract_answer(f"#### {it.answer}") == it.answer


def test_train_and_eval_names_are_disjoint_and_eval_questions_never_use_train_names():
    assert not set(tasks.TRAIN_NAMES) & set(tasks.EVAL_NAMES)
    train_names = set(tasks.TRAIN_NAMES) | set(tasks.ANIMALS_TRAIN) | set(tasks.FUNCTIONS_TRAIN)
    for task in tasks.GENERATORS:
        for it in tasks.make_items(task, "eval", 200):
            words = {w.strip(".,?:;|") for w in it.question.replace("(", " ").split()}
            assert not words & train_names, (task, it.question)


def test_mixture_has_exact_proportions():
    items = tasks.make_mixture({"arith": 0.7, "multistep": 0.3}, "train", 1001, seed=0, stream="x")
    assert len(items) == 1001
    n_arith = sum(it.task == "arith" for it in items)
    assert n_arith in (700, 701)
    assert items[:20] != sorted(items[:20], key=lambda it: it.task)  # interleaved, not blocked


def test_bad_task_split_and_weights_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown task"):
        tasks.make_items("gsm8k", "eval", 5)
    with pytest.raises(ValueError, match="unknown split"):
        tasks.make_items("arith", "test", 5)
    with pytest.raises(ValueError, match="weights"):
        tasks.make_mixture({"arith": 0}, "train", 5)


def test_item_text_is_prompt_plus_completion():
    it = Item("arith", "Ava has 2 pens and gets 3 more. How many pens does Ava have now?", "2 + 3 = 5.", 5)
    assert it.text == "Q: Ava has 2 pens and gets 3 more. How many pens does Ava have now? A: 2 + 3 = 5. #### 5"
