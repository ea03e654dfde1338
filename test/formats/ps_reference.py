"""Reference rendering of PromptSource templates with Python's jinja2, for uit's differential test.

Follows promptsource/templates.py (Template.apply, get_answer_choices_list): a default jinja2
Environment with zip as a global and the choice / most_frequent filters, '|||' protected in
string fields, truncation by rewriting every '}}', the output split on '|||' and stripped.
`choice` and `random` pick the first item so the comparison is deterministic (uit is run with the
same rule; `random` of an empty sequence is Undefined, as in Jinja2).

stdin: JSON list of {"file", "id", "row", "truncate"}; stdout: JSON list of
{"parts", "choices"} or {"error"}.
"""
import json
import sys
from collections import Counter

import yaml
from jinja2 import BaseLoader, Environment, pass_context

PROTECT = "3ed2dface8203c4c9dfb1a5dc58e41e0"

env = Environment(loader=BaseLoader)
env.globals.update(zip=zip)


def most_frequent(items):
    if not items:
        return None
    counts = Counter(items).most_common()
    top = counts[0][1]
    return [c[0] for c in counts if c[1] == top]


@pass_context
def first_or_undefined(context, seq):
    """jinja2.filters.do_random with the first item instead of a random one."""
    seq = list(seq) if not hasattr(seq, "__getitem__") else seq
    return seq[0] if len(seq) else context.environment.undefined("No random item, sequence was empty.")


env.filters["choice"] = lambda seq: seq[0]
env.filters["random"] = first_or_undefined
env.filters["most_frequent"] = most_frequent


def mapping(loader, node):
    return loader.construct_mapping(node, deep=True)


Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: much faster
Loader.add_constructor("!Template", mapping)
Loader.add_constructor("!TemplateMetadata", mapping)

_files = {}


def template(file, tid):
    if file not in _files:
        with open(file, encoding="utf-8") as f:
            _files[file] = yaml.load(f, Loader=Loader)["templates"]
    return _files[file][tid]


_compiled = {}


def compiled(source):
    if source not in _compiled:
        _compiled[source] = env.from_string(source)
    return _compiled[source]


def protect(row):
    return {k: v.replace("|||", PROTECT) if isinstance(v, str) else v for k, v in row.items()}


def render(case):
    t = template(case["file"], case["id"])
    row = case["row"]
    choices = None
    if t.get("answer_choices") is not None:
        rendered = compiled(t["answer_choices"]).render(**protect(row))
        choices = [c.strip().replace(PROTECT, "|||") for c in rendered.split("|||")]
    jinja = t["jinja"]
    if case.get("truncate", True):
        jinja = jinja.replace("}}", " | string | truncate(2048) }}")
    ctx = protect(row)
    ctx["answer_choices"] = choices
    out = compiled(jinja).render(**ctx)
    return {"parts": [p.replace(PROTECT, "|||").strip() for p in out.split("|||")], "choices": choices}


def main():
    results = []
    for case in json.load(sys.stdin):
        try:
            results.append(render(case))
        except Exception as e:  # the test compares failures too
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
