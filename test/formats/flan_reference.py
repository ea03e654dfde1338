"""FLAN's rendering, transcribed from flan/v2/preprocessors.py (google-research/FLAN) without
TensorFlow, for test/formats/flan.test.ts to compare uit against.

  - format_from_feature_dictionary: split on ({\\w*}), a part wrapped in braces is a feature,
    a non-string feature goes through tf.strings.as_string;
  - format_options / format_dialog: the blocks FLAN's task configs build before templating
    (they overwrite the example's own `options_` / `dialog_`); applied here when the row has
    the list they are built from.

Reads a JSON list of cases {"input", "output", "row"} on stdin, where "row" is the row's JSON
text (so integers stay exact), and writes a JSON list of {"input", "output"} or {"error": field}.
"""
import json
import re
import sys


def as_string(value):
    """tf.strings.as_string for the types a JSON row holds."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "%f" % value  # as_string's default format for floats
    raise TypeError(type(value).__name__)


def format_options(example):
    example["options_"] = "OPTIONS:\n- " + "\n- ".join(as_string(o) for o in example["options"])


def format_dialog(example):
    example["dialog_"] = "DIALOG:\n" + "\n- ".join(as_string(t) for t in example["dialog"]) + "\n- "


def format_from_feature_dictionary(format_string, feature_dictionary):
    if not format_string:
        return ""
    to_join = []
    parts = [p for p in re.split(r"({\w*})", format_string) if p]
    for part in parts:
        if part[0] == "{" and part[-1] == "}":
            to_join.append(as_string(feature_dictionary[part[1:-1]]))
        else:
            to_join.append(part)
    return "".join(to_join)


def render(case):
    example = json.loads(case["row"])
    if "options" in example:
        format_options(example)
    if "dialog" in example:
        format_dialog(example)
    try:
        return {
            "input": format_from_feature_dictionary(case["input"], example),
            "output": format_from_feature_dictionary(case["output"], example),
        }
    except KeyError as e:
        return {"error": e.args[0]}


if __name__ == "__main__":
    json.dump([render(c) for c in json.load(sys.stdin)], sys.stdout)
