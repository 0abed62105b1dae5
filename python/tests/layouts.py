"""``vis_end`` rows of every layout the op serves, built by hand from the rule (the crate's
RowBuilder does the same): prompt + completions, packed documents, trees in DFS preorder,
padding (``vis_end[j] = j``: visible to nobody)."""

import torch


class Row:
    def __init__(self):
        self.v = []

    def prefix_completions(self, prompt, completions):
        start = len(self.v)
        end = start + prompt + sum(completions)
        self.v += [end] * prompt
        at = start + prompt
        for c in completions:
            self.v += [at + c] * c
            at += c
        return self

    def document(self, length):
        end = len(self.v) + length
        self.v += [end] * length
        return self

    def tree(self, node):
        """``node`` = (length, [children]): laid out in DFS preorder; each token sees up to the
        end of its segment's subtree."""
        start = len(self.v)
        length, children = node
        self.v += [0] * length
        for c in children:
            self.tree(c)
        end = len(self.v)
        self.v[start:start + length] = [end] * length
        return self

    def padding(self, length):
        self.v += list(range(len(self.v), len(self.v) + length))
        return self

    def finish(self, n):
        assert len(self.v) <= n, (len(self.v), n)
        return self.padding(n - len(self.v)).v


def rows(*rs):
    return torch.tensor(rs, dtype=torch.int32)


def dpo(n=100):
    """Two DPO rows: prompt 37 with chosen 21 / rejected 30; prompt 9 with 40 / 12, then another
    pair packed after it."""
    a = Row().prefix_completions(37, [21, 30]).finish(n)
    b = Row().prefix_completions(9, [40, 12]).prefix_completions(5, [3, 20]).finish(n)
    return rows(a, b)


def grpo(n=100):
    """A GRPO group of 4 (prompt 20, completions 10 to 25) and a group of 3."""
    a = Row().prefix_completions(20, [10, 25, 17, 14]).finish(n)
    b = Row().prefix_completions(31, [19, 2, 33]).finish(n)
    return rows(a, b)


def packed(n=100):
    """Packed documents (60, 25, 1) then padding; and a row of 7 documents."""
    a = Row().document(60).document(25).document(1).finish(n)
    b = Row()
    for length in (16, 3, 30, 1, 20, 19, 11):
        b.document(length)
    return rows(a, b.finish(n))


def tree(n=100):
    """A branching history: root 20, two children (one with two children of its own), a third
    child; a deeper chain in the second row."""
    a = Row().tree((20, [(20, [(15, []), (15, [])]), (20, [])])).finish(n)
    b = Row().tree((5, [(30, [(10, [(7, []), (9, [])])]), (1, []), (17, [(6, [])])])).finish(n)
    return rows(a, b)


def padded(n=100):
    """A causal row of 50 tokens then padding, and a row that is all padding (no query sees a
    key: O = 0, LSE = -inf, zero gradients)."""
    a = Row().document(50).finish(n)
    b = Row().finish(n)
    return rows(a, b)


LAYOUTS = {"dpo": dpo, "grpo": grpo, "packed": packed, "tree": tree, "padded": padded}
