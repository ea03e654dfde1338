# Experiment, not part of the product: rewrite model.gen.onnx's attention so it reads the past
# directly instead of Concat(past, new) (which copies the whole KV cache every step although the
# fast graph never outputs `present`):
#   scores = Concat(Q @ past_k^T, Q @ k_new^T)   (small: [b, H, s, past+s])
#   out    = P[..., :past] @ past_v + P[..., past:] @ v_new
# Measured on bench/models/gptj-25m (1 thread, 16 rows, past 330): 68 -> 51 ms CPU per step,
# logits equal within 1.1e-6. For scripts/fast_graphs.py to adopt; see docs/runtime.md "Speed".
#   /usr/bin/python3 bench/experiments/gen-attention-without-concat.py MODEL/onnx/model.gen.onnx MODEL/onnx/model.gen2.onnx
#   node bench/experiments/gen-attention-without-concat.mjs 16 330
import sys, onnx
from onnx import helper, TensorProto as T
src, dst = sys.argv[1], sys.argv[2]
m = onnx.load(src, load_external_data=False)
g = m.graph
prod = {o: n for n in g.node for o in n.output}
cons = {}
for n in g.node:
    for i in n.input: cons.setdefault(i, []).append(n)
new_nodes = []
remove = set()
L = sum(1 for i in g.input if i.name.startswith('past_key_values.') and i.name.endswith('.key'))
consts = [helper.make_tensor('x_axes3', T.INT64, [1], [3]), helper.make_tensor('x_zero', T.INT64, [1], [0]),
          helper.make_tensor('x_big', T.INT64, [1], [2**62]), helper.make_tensor('x_two', T.INT64, [1], [2])]
g.initializer.extend(consts)
for l in range(L):
    ck = prod[f'present.{l}.key']; cv = prod[f'present.{l}.value']
    knew = ck.input[1]; vnew = cv.input[1]
    tr = [n for n in cons[f'present.{l}.key'] if n.op_type == 'Transpose'][0]
    mm = [n for n in cons[tr.output[0]] if n.op_type == 'MatMul'][0]
    pv = [n for n in cons[f'present.{l}.value'] if n.op_type == 'MatMul'][0]
    q = mm.input[0]
    p = f'x{l}_'
    new_nodes += [
        helper.make_node('Transpose', [f'past_key_values.{l}.key'], [p+'pkT'], perm=[0,1,3,2]),
        helper.make_node('MatMul', [q, p+'pkT'], [p+'sp']),
        helper.make_node('Transpose', [knew], [p+'knT'], perm=[0,1,3,2]),
        helper.make_node('MatMul', [q, p+'knT'], [p+'sn']),
        helper.make_node('Concat', [p+'sp', p+'sn'], [mm.output[0]], axis=3),
        helper.make_node('Shape', [f'past_key_values.{l}.key'], [p+'shape']),
        helper.make_node('Gather', [p+'shape', 'x_two'], [p+'tp'], axis=0),
        helper.make_node('Slice', [pv.input[0], 'x_zero', p+'tp', 'x_axes3'], [p+'pp']),
        helper.make_node('Slice', [pv.input[0], p+'tp', 'x_big', 'x_axes3'], [p+'pn']),
        helper.make_node('MatMul', [p+'pp', f'past_key_values.{l}.value'], [p+'op']),
        helper.make_node('MatMul', [p+'pn', vnew], [p+'on']),
        helper.make_node('Add', [p+'op', p+'on'], [pv.output[0]]),
    ]
    remove |= {id(ck), id(cv), id(tr), id(mm), id(pv)}
keep = [n for n in g.node if id(n) not in remove]
# insert new nodes; topological order: put them right before their consumers by simple sort
del g.node[:]
g.node.extend(keep + new_nodes)
# topo sort
avail = {i.name for i in g.input} | {i.name for i in g.initializer} | {''}
nodes = list(g.node); ordered = []
while nodes:
    rest = []
    for n in nodes:
        if all(i in avail for i in n.input): ordered.append(n); avail |= set(n.output)
        else: rest.append(n)
    if len(rest) == len(nodes): raise SystemExit('cycle/missing: ' + str([ (n.name, [i for i in n.input if i not in avail]) for n in rest[:3]]))
    nodes = rest
del g.node[:]; g.node.extend(ordered)
onnx.save(m, dst)
print('wrote', dst)
