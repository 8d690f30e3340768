"""The consumer's pure decision of how it makes sure its checkpoint block is still canonical."""
from __future__ import annotations

from workers.consumer.finality import Lookup, checkpoint_lookup


def test_without_a_checkpoint_block_there_is_nothing_to_look_up():
    assert checkpoint_lookup(has_checkpoint=False, suspect=True, checkpoint=-1, head=10) is Lookup.NONE


def test_at_start_up_or_after_the_chain_moved_the_checkpoint_block_is_fetched():
    assert checkpoint_lookup(has_checkpoint=True, suspect=True, checkpoint=5, head=10) is Lookup.FETCH


def test_a_chain_shorter_than_the_checkpoint_is_looked_at():
    assert checkpoint_lookup(has_checkpoint=True, suspect=False, checkpoint=5, head=4) is Lookup.FETCH


def test_a_checkpoint_at_the_head_is_compared_with_the_head_just_read():
    assert checkpoint_lookup(has_checkpoint=True, suspect=False, checkpoint=5, head=5) is Lookup.HEAD


def test_with_new_blocks_the_next_range_checks_the_checkpoint_through_its_first_blocks_parent():
    assert checkpoint_lookup(has_checkpoint=True, suspect=False, checkpoint=5, head=9) is Lookup.NONE
