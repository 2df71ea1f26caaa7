"""The command-line form of interventions, and clear errors for nodes that do not exist."""

import pytest

from circuitscope.errors import CircuitscopeError
from circuitscope.interventions.spec import (
    Intervention,
    Supernode,
    check_interventions,
    parse_all,
    parse_intervention,
)


def test_parse_single_group_wildcard_and_error_nodes():
    assert parse_intervention("3:5:120=0", "set") == [Intervention(3, 5, 120, "set", 0.0)]
    assert parse_intervention(" 2:*:7 = -1.5e1", "add") == [Intervention(2, None, 7, "add", -15.0)]
    group = parse_intervention("1:4:9,2:4:err=2", "scale")
    assert group == [Intervention(1, 4, 9, "scale", 2.0), Intervention(2, 4, None, "scale", 2.0)]
    everything = parse_all(set_=["0:1:2=3"], scale=["1:2:3=0.5"], add=[], zero_=["4:5:6,4:5:err"])
    assert [i.operation for i in everything] == ["set", "scale", "set", "set"]
    assert everything[-1] == Intervention(4, 5, None, "set", 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3:5:120", "expects L:P:F=VALUE"),
        ("3:5=1", "is not a node"),
        ("3:5:x=1", "is not a node"),
        ("3:5:1=big", "is not a number"),
        ("3:5:1=1=2", "expects L:P:F=VALUE"),
        ("3:5:1,=1", "is not a node"),
    ],
)
def test_malformed_text_is_refused(text: str, message: str):
    with pytest.raises(CircuitscopeError, match=message):
        parse_intervention(text, "set")


def test_zero_takes_no_value():
    with pytest.raises(CircuitscopeError, match="without a value"):
        parse_all(zero_=["1:2:3=0"])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (Intervention(4, 1, 0, "set", 1.0), "no layer 4; layers are 0..3"),
        (Intervention(-1, 1, 0, "set", 1.0), "no layer -1"),
        (Intervention(1, 1, 16, "set", 1.0), "no feature 16 in layer 1; it has 16"),
        (Intervention(1, 9, 3, "set", 1.0), "no position 9; positions are 0..8"),
        (Intervention(1, -2, 3, "set", 1.0), "no position -2"),
        (Intervention(1, 0, 3, "set", 1.0), "BOS attention sink"),
        (Intervention(1, 0, None, "set", 1.0), "no features or error nodes"),
    ],
)
def test_nodes_that_do_not_exist_are_refused(item: Intervention, message: str):
    with pytest.raises(CircuitscopeError, match=message):
        check_interventions([item], n_layers=4, n_features=[16] * 4, seq_len=9)


def test_any_position_is_accepted_in_generation():
    check_interventions([Intervention(0, 50, 2, "set", 0.0)], 4, [16] * 4, seq_len=None)


def test_supernode_scales_every_member():
    node = Supernode("Texas", ((1, 3, 5), (2, 3, 8), (2, 4, None)))
    assert [i.value for i in node.scaled(-2.0)] == [-2.0] * 3
    assert {i.operation for i in node.set_to(0.0)} == {"set"}
    assert node.scaled(0.5)[2].is_error
    assert Intervention(1, 2, 3, "add", 1.5).new_value(2.0) == 3.5
