"""The cloud's refusals in sentences (messages as a real Nova and Neutron write them)."""

from __future__ import annotations

from orchestration.cloud.errors import quota_sentence


def test_it_words_novas_instance_quota_refusal() -> None:
    text = quota_sentence("Quota exceeded for instances: Requested 1, but already used 1 of 1 instances")
    assert text == (
        "The project's instance quota (1) is used up: 1 in use, 1 more asked for. "
        "Delete something or ask for a larger quota."
    )


def test_it_words_neutrons_list_of_resources_without_a_python_repr() -> None:
    text = quota_sentence("Quota exceeded for resources: ['floatingip'].", {"floatingip": 1})
    assert text == "The project's floating IP quota (1) is used up. Release one or ask for a larger quota."
    two = quota_sentence("Quota exceeded for resources: ['port', 'floatingip'].")
    assert (
        two
        == "The project's port quota and floating IP quota are used up. Release one or ask for a larger quota."
    )
    assert "[" not in two and "'" not in two.replace("project's", "")


def test_it_keeps_an_unknown_message_readable() -> None:
    assert quota_sentence("Quota exceeded.") == "The project's quota is used up (Quota exceeded)."
