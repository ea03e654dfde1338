"""How the UIT reference scores its candidate files, transcribed for reference-scoring.test.ts.

The reference is thunlp/UnifiedInstructionTuning, main_ppl_annotation.py (evaluate_a_json, which
builds the prompts and averages, and test_mean_ppl / utils.teacher_forcing, which take one slice's
cross-entropy). Transcribed as it behaves:
- the prompt is made with f-strings from the parsed file, so the Definition LIST is formatted by
  Python itself (its repr);
- each instance's prefix is the template + its input + "\\nOutput: ", its target the first output,
  or the string "null" when that is empty;
- four slices, [:8], [8:16], [16:24] and [24:], each with a token-weighted cross-entropy (the fused
  loss's mean over the slice's target tokens), and their plain mean;
- anything that raises in there (an empty slice: torch.stack of nothing; a prefix + target longer
  than max_decoder_length: the tensor copy) makes the candidate's result None.
Replaced, because they cannot run here:
- random.shuffle (unseeded) by the order uit chose: the instances uit scored come first, in its
  order, so that the slice [:test_num] takes exactly them;
- the GPT-J forward by the numbers uit's scorer gave each (prefix, target): looked up by the exact
  texts, so a prompt that uit did not build raises KeyError;
- the tokenizer by the test fixture's (byte-level, no merges: one token per UTF-8 byte), which
  decides what exceeds max_decoder_length.

stdin: {"max_len", "test_num", "files": [{"path", "order": [instance id, ...]}], "pairs": [[prefix, target, sum_ce, tokens], ...]}
stdout: {path: {"prefixes", "suffixes", "loss"}}
"""
import json
import sys


def slice_ce(prefixes, suffixes, pairs, max_len):
    if not prefixes:
        raise RuntimeError("stack expects a non-empty TensorList")
    # the whole slice is put into tensors before the forward: an overlong one raises first
    for prefix, suffix in zip(prefixes, suffixes):
        if len(prefix.encode("utf-8")) + len(suffix.encode("utf-8")) > max_len:
            raise RuntimeError("the sequence does not fit max_decoder_length")
    total, count = 0.0, 0
    for prefix, suffix in zip(prefixes, suffixes):
        sum_ce, tokens = pairs[(prefix, suffix)]
        assert tokens == len(suffix.encode("utf-8")), suffix  # uit tokenized the target alone, as the reference does
        total += sum_ce
        count += tokens
    return total / count


def evaluate(path, order, pairs, max_len, test_num):
    with open(path) as f:
        data = json.load(f)

    template = ""
    template += f"Definition: {data['Definition']}\n\n"
    template += "Positive Examples 1\n"
    template += f"Input: {data['Positive Examples'][0]['input']}\n"
    template += f"Output: {data['Positive Examples'][0]['output']}\n\n"
    template += "Positive Examples 2\n"
    template += f"Input: {data['Positive Examples'][1]['input']}\n"
    template += f"Output: {data['Positive Examples'][1]['output']}\n\n"
    template += "Now complete the following example -\nInput: "

    position = {id_: i for i, id_ in enumerate(order)}
    data["Instances"].sort(key=lambda x: position.get(x["id"], len(position)))  # stands for random.shuffle
    instances = data["Instances"][:test_num] if len(data["Instances"]) >= test_num else data["Instances"]

    prefixes = [template + x["input"] + "\nOutput: " for x in instances]
    suffixes = [x["output"][0] if x["output"][0] != "" else "null" for x in instances]
    try:
        res = [
            slice_ce(prefixes[:8], suffixes[:8], pairs, max_len),
            slice_ce(prefixes[8:16], suffixes[8:16], pairs, max_len),
            slice_ce(prefixes[16:24], suffixes[16:24], pairs, max_len),
            slice_ce(prefixes[24:], suffixes[24:], pairs, max_len),
        ]
        loss = sum(res) / len(res)
    except (RuntimeError, ZeroDivisionError):  # the reference's bare except; a KeyError must surface
        loss = None
    return {"prefixes": prefixes, "suffixes": suffixes, "loss": loss}


def main():
    job = json.load(sys.stdin)
    pairs = {(p, t): (ce, n) for p, t, ce, n in job["pairs"]}
    out = {f["path"]: evaluate(f["path"], f["order"], pairs, job["max_len"], job["test_num"]) for f in job["files"]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
