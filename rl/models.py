"""Models: Sequential stacks, functional graphs and subclassed networks, with Keras' interface.

Three levels of disclosure, as Keras:

* ``Sequential([Dense(64, activation="relu"), Dense(2)])``: a plain stack; its forward is a loop.
* ``Model(inputs, outputs)``: a graph recorded by calling layers on :func:`Input` placeholders,
  with branches, merges (``Add``, ``Concatenate``), several inputs/outputs and shared layers.
* ``class Net(Model)``: set layers as attributes in ``__init__`` and write ``call(x)``.

A model is itself a layer, so it can be nested inside another model (a frozen pretrained
backbone under a new head). Its weights are named like Keras / TF.js (``dense/kernel``), the
layers' auto names are made unique per model (``dense``, ``dense_1``), and
``state_dict()`` / ``load_state_dict()`` move ``"layer/weight" -> array`` maps in and out.

``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``train_on_batch`` live in
:mod:`rl.training` and ``save`` / ``load_model`` / ``save_weights`` / ``load_weights`` in
:mod:`rl.checkpoint`; the methods here only forward to them. At the low level a model is also an
ordinary callable with ``parameters()`` and ``zero_grad()`` for a hand-written training loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rl import backend, checkpoint
from rl import training as train_loop  # "training" is the name of a call argument here
from rl.layer_base import KerasTensor, Layer, Node, deserialize, is_symbolic, model_from_config, serialize
from rl.layers import Input as Input
from rl.layers import InputLayer
from rl.tensor import Tensor, no_grad, using_config

__all__ = ["Input", "Model", "Sequential", "load_model", "model_from_config", "model_from_json"]


def _unique_name(base: str, used: set[str], start_at_one: bool = False) -> str:
    if not start_at_one and base not in used:
        return base
    i = 1
    while f"{base}_{i}" in used:
        i += 1
    return f"{base}_{i}"


def _format_shape(shape: Any) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Model(Layer, register_as=("Functional",)):
    """A network of layers: functional (``Model(inputs, outputs)``) or subclassed (override ``call``).

    Args:
        inputs: a :class:`~rl.layers.KerasTensor` from :func:`Input`, or a list of them.
        outputs: the KerasTensor(s) computed from ``inputs`` by calling layers.
        name: the model's name (``"model"`` by default).
        trainable: ``False`` freezes every layer inside.

    Calling the model on a tensor (or NumPy array; a list/dict for several inputs) runs the
    layers in topological order and returns a tensor (a list for several outputs). Calling it on
    KerasTensors nests it in a bigger graph.
    """

    def __init__(self, inputs: Any = None, outputs: Any = None, name: str | None = None, trainable: bool = True,
                 **kwargs: Any):
        object.__setattr__(self, "_layers", [])
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._nodes: list[Node] = []
        self._is_graph = False
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError("Model(inputs, outputs) needs both inputs and outputs")
            self._init_graph(inputs, outputs)

    @classmethod
    def _base_name(cls) -> str:
        return "model" if cls is Model else super()._base_name()

    # ------------------------------------------------------------------------------ layers and names
    def __setattr__(self, key: str, value: Any) -> None:
        # Subclassed models: layers assigned as attributes (or lists of layers) join the model.
        if not key.startswith("_") and not self._is_graph_safe():
            for layer in value if isinstance(value, list | tuple) else [value]:
                if isinstance(layer, Layer) and not any(layer is l for l in self._layers):
                    self._track(layer)
        object.__setattr__(self, key, value)

    def _is_graph_safe(self) -> bool:
        return self.__dict__.get("_is_graph", True) or type(self) in (Model, Sequential)

    def _all_layers(self) -> list[Layer]:
        """Every layer inside, recursively (nested models and their layers)."""
        out: list[Layer] = []
        for layer in self._layers:
            out.append(layer)
            if isinstance(layer, Model):
                out.extend(layer._all_layers())
        return out

    def _track(self, layer: Layer, reserved: set[str] | frozenset[str] = frozenset()) -> None:
        """Add ``layer`` to this model, giving it a name unique within the model if it has none.

        ``reserved``: names that layers about to join already hold, which auto names must avoid.
        """
        inside = self._all_layers()
        if any(layer is l for l in inside):
            return
        used = {l.name for l in inside if l._name is not None}
        if isinstance(layer, Model):
            nested = layer._all_layers()
            clash = used & {l.name for l in nested if l._name is not None}
            if clash:
                raise ValueError(
                    f"model '{layer.name}' cannot join '{self.name}': layer name(s) {sorted(clash)} exist in both"
                )
            used |= {l.name for l in nested}
        if layer._name is None:
            layer._set_name(_unique_name(layer._base_name(), used | set(reserved),
                                         start_at_one=isinstance(layer, InputLayer)))
        elif layer._name in used:
            raise ValueError(
                f"model '{self.name}' already has a layer named '{layer._name}'; layer names must be unique"
            )
        self._layers.append(layer)

    @property
    def layers(self) -> list[Layer]:
        """The model's layers in order (a functional model's InputLayers first, as Keras)."""
        return list(self._layers)

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """The layer called ``name`` (searched recursively) or at position ``index``; errors list the names."""
        if index is not None:
            try:
                return self.layers[index]
            except IndexError:
                raise IndexError(f"model '{self.name}' has {len(self.layers)} layers; no index {index}") from None
        for layer in self._all_layers():
            if layer.name == name:
                return layer
        valid = ", ".join(l.name for l in self._all_layers())
        raise ValueError(f"no layer named {name!r} in model '{self.name}'; layers: {valid}")

    def _all_weights(self):
        seen: set[int] = set()
        for item in self._own_weights():
            seen.add(id(item[1]))
            yield item
        for layer in self._layers:
            for item in layer._all_weights():
                if id(item[1]) not in seen:
                    seen.add(id(item[1]))
                    yield item

    @Layer.trainable.setter  # type: ignore[attr-defined]
    def trainable(self, value: bool) -> None:
        """Setting it freezes/unfreezes every layer inside (Keras)."""
        Layer.trainable.fset(self, value)  # type: ignore[attr-defined]
        for layer in self._layers:
            layer.trainable = value

    # ------------------------------------------------------------------------------ functional graphs
    def _init_graph(self, inputs: Any, outputs: Any) -> None:
        self._is_graph = True
        self._single_input = isinstance(inputs, KerasTensor)
        self._single_output = isinstance(outputs, KerasTensor)
        self._inputs = [inputs] if self._single_input else list(inputs)
        self._outputs = [outputs] if self._single_output else list(outputs)
        for t in self._inputs:
            if not isinstance(t, KerasTensor) or not isinstance(t.node.layer, InputLayer):  # type: ignore[union-attr]
                raise ValueError(f"Model inputs must come from Input(...), got {t!r}")
        for t in self._outputs:
            if not isinstance(t, KerasTensor):
                raise ValueError(f"Model outputs must be KerasTensors made by calling layers, got {t!r}")
        nodes = self._sorted_nodes()
        self._nodes = nodes
        joining = [t.node.layer for t in self._inputs] + [node.layer for node in nodes]  # type: ignore[union-attr]
        reserved = set()
        for layer in joining:
            for named in [layer, *(layer._all_layers() if isinstance(layer, Model) else [])]:
                if named._name is not None:
                    reserved.add(named._name)
        for layer in joining:
            self._track(layer, reserved)
        slot: dict[int, int] = {}
        for node in nodes:
            for t in node.outputs:
                slot[id(t)] = len(slot)
        self._n_slots = len(slot)
        unused = [t.node.layer.name for t in self._inputs if id(t) not in slot]  # type: ignore[union-attr]
        if unused:  # the graph is walked back from the outputs, so an input nothing uses is never reached
            raise ValueError(f"model input(s) {unused} are not used by any output; leave them out of inputs")
        self._input_slots = [slot[id(t)] for t in self._inputs]
        self._output_slots = [slot[id(t)] for t in self._outputs]
        self._input_dtypes = [t.dtype for t in self._inputs]
        self._plan = [
            (node.layer, [slot[id(t)] for t in node.inputs], node.single_input, [slot[id(t)] for t in node.outputs],
             node.kwargs)
            for node in nodes
            if node.inputs
        ]
        self._dtype = self._inputs[0].dtype
        self.built = True

    def _sorted_nodes(self) -> list[Node]:
        """Graph nodes that lead from the inputs to the outputs, each after the nodes it reads from."""
        input_ids = {id(t) for t in self._inputs}
        order: list[Node] = []
        done: set[int] = set()
        # Iterative depth-first post-order (no recursion limit on deep graphs). No cycle check: a node
        # can only read tensors that existed before it was called.
        stack: list[tuple[Node, bool]] = [(t.node, False) for t in reversed(self._outputs)]  # type: ignore[misc]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                if id(node) not in done:
                    done.add(id(node))
                    order.append(node)
                continue
            if id(node) in done:
                continue
            if not node.inputs and not any(id(t) in input_ids for t in node.outputs):
                raise ValueError(
                    f"graph disconnected: it needs input layer '{node.layer.name}', which is not in the model's "
                    "inputs"
                )
            stack.append((node, True))
            for t in reversed(node.inputs):
                if t.node is None:
                    raise ValueError(f"{t!r} has no producing layer; build graphs from Input(...)")
                if id(t.node) not in done:
                    stack.append((t.node, False))
        return order

    def _node_index(self, node: Node) -> int:
        """The node's index among its layer's calls inside this model (Keras' node_index)."""
        mine = [n for n in node.layer._inbound_nodes if any(n is m for m in self._nodes)]
        for i, n in enumerate(mine):
            if n is node:
                return i
        return next((i for i, n in enumerate(node.layer._inbound_nodes) if n is node), 0)

    @property
    def inputs(self) -> list[KerasTensor]:
        """The model's symbolic inputs."""
        return list(self._inputs) if self._is_graph else []

    @property
    def outputs(self) -> list[KerasTensor]:
        """The model's symbolic outputs."""
        return list(self._outputs) if self._is_graph else []

    @property
    def input(self) -> Any:
        """The symbolic input (a list for several), e.g. to build a new model on a pretrained one."""
        self._require_graph("input")
        return self._inputs[0] if len(self._inputs) == 1 else list(self._inputs)

    @property
    def output(self) -> Any:
        """The symbolic output (a list for several)."""
        self._require_graph("output")
        return self._outputs[0] if len(self._outputs) == 1 else list(self._outputs)

    @property
    def input_shape(self) -> Any:
        """Shape of the symbolic input, batch axis ``None`` first (a list for several inputs)."""
        inp = self.input
        return [t.shape for t in inp] if isinstance(inp, list) else inp.shape

    @property
    def output_shape(self) -> Any:
        """Shape of the symbolic output, batch axis ``None`` first (a list for several outputs)."""
        out = self.output
        return [t.shape for t in out] if isinstance(out, list) else out.shape

    def _require_graph(self, what: str) -> None:
        if not self._is_graph:
            raise AttributeError(
                f"model '{self.name}' has no symbolic {what}: it is subclassed or not built (give an input shape)"
            )

    # ------------------------------------------------------------------------------ running
    def __call__(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        """Forward pass on tensors/arrays; ``training=`` overrides ``config.train`` for this call."""
        if training is not None:
            with using_config("train", bool(training)):
                return self.__call__(inputs, **kwargs)
        if is_symbolic(inputs):
            return self._call_symbolic(inputs, kwargs)
        if self._is_graph:
            return self.call(inputs, **kwargs)
        return Layer.__call__(self, inputs, **kwargs)

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        """Run the recorded graph (subclassed models override this with their own forward)."""
        if not self._is_graph:
            raise NotImplementedError(f"subclassed model {type(self).__name__} must implement call()")
        if self._single_input or (len(self._inputs) == 1 and not isinstance(inputs, list | tuple | dict)):
            xs = [inputs]
        elif isinstance(inputs, dict):
            missing = [t.node.layer.name for t in self._inputs if t.node.layer.name not in inputs]  # type: ignore
            if missing:
                raise KeyError(f"model '{self.name}' inputs missing from the dict: {missing}")
            xs = [inputs[t.node.layer.name] for t in self._inputs]  # type: ignore[union-attr]
        else:
            xs = list(inputs)
            if len(xs) != len(self._inputs):
                raise ValueError(f"model '{self.name}' takes {len(self._inputs)} inputs, got {len(xs)}")
        vals: list[Any] = [None] * self._n_slots
        for s, x, dt in zip(self._input_slots, xs, self._input_dtypes):
            vals[s] = x if type(x) is Tensor else Tensor(x, dtype=dt)
        for layer, ins, single, outs, kw in self._plan:
            y = layer(vals[ins[0]] if single else [vals[i] for i in ins], **kw)
            if len(outs) == 1:
                vals[outs[0]] = y
            else:
                for o, v in zip(outs, y):
                    vals[o] = v
        if self._single_output:
            return vals[self._output_slots[0]]
        return [vals[s] for s in self._output_slots]

    def build(self, input_shape: Any) -> None:
        """Subclassed models: create every weight by running ``call`` once on zeros (batch of one)."""
        if self._is_graph:
            return
        xp = backend.current().xp
        dt = self._dtype or np.float32

        def zeros(shape):
            return Tensor(xp.zeros((1, *shape[1:]), dtype=dt))

        probe = [zeros(s) for s in input_shape] if isinstance(input_shape, list) else zeros(input_shape)
        with no_grad(), using_config("train", False):
            self.call(probe)

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Output shape(s) for ``input_shape`` (batch axis included), propagated through the recorded graph."""
        if not self._is_graph:
            return super().compute_output_shape(input_shape)
        shapes: list[Any] = [None] * self._n_slots
        given = [input_shape] if self._single_input or len(self._inputs) == 1 else list(input_shape)
        for s, shape in zip(self._input_slots, given):
            shapes[s] = tuple(shape)
        for layer, ins, single, outs, _ in self._plan:
            out = layer.compute_output_shape(shapes[ins[0]] if single else [shapes[i] for i in ins])
            for o, shape in zip(outs, out if len(outs) > 1 else [out]):
                shapes[o] = tuple(shape)
        if self._single_output:
            return shapes[self._output_slots[0]]
        return [shapes[s] for s in self._output_slots]

    # ------------------------------------------------------------------------------ summary
    def _summary_rows(self) -> list[tuple[str, str, str, list[str]]]:
        rows = []
        for layer in self._layers:
            nodes = [n for n in layer._inbound_nodes if any(n is m for m in self._nodes)]
            if len(nodes) == 1:
                shapes = [t.shape for t in nodes[0].outputs]
                shape = _format_shape(shapes[0] if len(shapes) == 1 else shapes)
            else:
                shape = "multiple" if nodes else "?"
            if isinstance(layer, InputLayer):
                shape = "[" + shape + "]"
            connected = [
                f"{t.node.layer.name}[{self._node_index(t.node)}][{t.index}]"  # type: ignore[union-attr]
                for n in nodes for t in n.inputs
            ]
            params = layer.count_params() if layer.built else 0
            rows.append((f"{layer.name} ({type(layer).__name__})", shape, f"{params}", connected or ["[]"]))
        return rows

    def summary(self, print_fn: Callable[[str], Any] = print, line_length: int | None = None) -> None:
        """Print a Keras-like table: layer (type), output shape, parameter count (and, for graphs with
        branches, what each layer is connected to), then total / trainable / non-trainable parameters."""
        if not self.built:
            raise ValueError(
                f"model '{self.name}' is not built yet: call it on data or give the first layer input_shape=..."
            )
        rows = self._summary_rows()
        show_connections = self._is_graph and type(self) is not Sequential
        headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if show_connections else [])
        # Keras' minimum column widths, widened to fit; a subclassed model may have no rows at all.
        widths = [
            max([29, *(len(r[0]) + 3 for r in rows)]),
            max([26, *(len(r[1]) + 2 for r in rows)]),
            max([10, *(len(r[2]) + 2 for r in rows)]),
        ]
        if show_connections:
            widths.append(max([14, *(len(c) + 1 for r in rows for c in r[3])]))
        total_width = line_length or sum(widths)

        def line(cells: Sequence[str]) -> str:
            return "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

        print_fn(f'Model: "{self.name}"')
        print_fn("_" * total_width)
        print_fn(line([" " + headers[0], *headers[1:]]))
        print_fn("=" * total_width)
        for i, (name, shape, params, connected) in enumerate(rows):
            cells = [" " + name, shape, params] + ([connected[0]] if show_connections else [])
            print_fn(line(cells))
            for extra in connected[1:] if show_connections else []:
                print_fn(line(["", "", "", extra]))
            if i < len(rows) - 1:
                print_fn("")
        total, trainable = self._param_totals()
        print_fn("=" * total_width)
        print_fn(f"Total params: {total:,}")
        print_fn(f"Trainable params: {trainable:,}")
        print_fn(f"Non-trainable params: {total - trainable:,}")
        print_fn("_" * total_width)

    def _param_totals(self) -> tuple[int, int]:
        total = trainable = 0
        for _, t, is_param in self._all_weights():
            total += t.size
            if is_param and t.requires_grad:
                trainable += t.size
        return total, trainable

    # ------------------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """Keras' functional config: ``{name, layers: [{class_name, config, name, inbound_nodes}], input_layers,
        output_layers}`` (JSON-able; see docs/specs/formats.md §5.3)."""
        if not self._is_graph:
            raise NotImplementedError(
                f"get_config() of subclassed model {type(self).__name__}: its architecture is Python code; "
                "save weights with state_dict() instead"
            )
        layers = []
        for layer in self._layers:
            entry = serialize(layer)
            nodes = [n for n in layer._inbound_nodes if any(n is m for m in self._nodes) and n.inputs]
            entry["name"] = layer.name
            entry["inbound_nodes"] = [
                [[t.node.layer.name, self._node_index(t.node), t.index, dict(n.kwargs)] for t in n.inputs]
                for n in nodes
            ]
            layers.append(entry)

        def refs(tensors: list[KerasTensor]) -> list[list[Any]]:
            return [[t.node.layer.name, self._node_index(t.node), t.index] for t in tensors]  # type: ignore

        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": layers,
            "input_layers": refs(self._inputs),
            "output_layers": refs(self._outputs),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: dict[str, type] | None = None) -> Model:
        """Rebuild a functional model from :meth:`get_config`'s dict, reconnecting the layers node by node."""
        for key in ("layers", "input_layers", "output_layers"):
            if key not in config:
                raise ValueError(f"functional model config is missing {key!r} (has {sorted(config)})")
        created: dict[str, Layer] = {}
        pending: dict[str, list[Any]] = {}
        order: list[str] = []
        for i, entry in enumerate(config["layers"]):
            layer = deserialize(entry, custom_objects)
            name = entry.get("name") or layer.name
            if name in created:
                raise ValueError(f"model config: layer #{i} repeats the name {name!r}")
            created[name] = layer
            pending[name] = list(entry.get("inbound_nodes") or [])
            order.append(name)
        produced: dict[tuple[str, int], list[KerasTensor]] = {}
        calls = dict.fromkeys(order, 0)
        for name, layer in created.items():
            if isinstance(layer, InputLayer):
                produced[(name, 0)] = [layer.output]
                calls[name] = 1
        progress = True
        while progress and any(pending.values()):
            progress = False
            for name in order:
                while pending[name]:
                    node = pending[name][0]
                    refs = [r for r in node]
                    if not all((r[0], r[1]) in produced for r in refs):
                        break
                    kwargs = refs[0][3] if len(refs[0]) > 3 and isinstance(refs[0][3], dict) else {}
                    ins = [produced[(r[0], r[1])][r[2]] for r in refs]
                    out = created[name](ins[0] if len(ins) == 1 else ins, **kwargs)
                    produced[(name, calls[name])] = out if isinstance(out, list) else [out]
                    calls[name] += 1
                    pending[name].pop(0)
                    progress = True
        stuck = [n for n, p in pending.items() if p]
        if stuck:
            raise ValueError(f"model config: cannot connect layer(s) {stuck}: their inbound layers are never computed")

        def lookup(refs: list[list[Any]], what: str) -> list[KerasTensor]:
            out = []
            for r in refs:
                if (r[0], r[1]) not in produced:
                    raise ValueError(f"model config: {what} refers to unknown layer/node {r!r}")
                out.append(produced[(r[0], r[1])][r[2]])
            return out

        inputs = lookup(config["input_layers"], "input_layers")
        outputs = lookup(config["output_layers"], "output_layers")
        model = cls(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs,
                    name=config.get("name"))
        if not config.get("trainable", True):
            model.trainable = False
        return model

    def to_json(self) -> str:
        """The architecture as Keras-style JSON: ``{"class_name": ..., "config": ...}``."""
        return json.dumps(serialize(self))

    # ------------------------------------------------------------------------------ training (rl.training)
    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Any = None, **kwargs: Any) -> Any:
        """Attach an optimizer, loss and metrics for :meth:`fit` (see :func:`rl.training.compile`)."""
        return train_loop.compile(self, optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def fit(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """Train on ``x``, ``y`` or a batched :class:`rl.data.Dataset` (see :func:`rl.training.fit`); returns History"""
        return train_loop.fit(self, x, y, **kwargs)

    def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any) -> Any:
        """Loss and metrics on ``x``, ``y`` in inference mode (see :func:`rl.training.evaluate`)."""
        with using_config("train", False):
            return train_loop.evaluate(self, x, y, **kwargs)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        """Outputs for ``x`` in inference mode, batched (see :func:`rl.training.predict`)."""
        with using_config("train", False):
            return train_loop.predict(self, x, **kwargs)

    def train_on_batch(self, x: Any, y: Any, **kwargs: Any) -> Any:
        """One optimizer step on one batch (see :func:`rl.training.train_on_batch`)."""
        return train_loop.train_on_batch(self, x, y, **kwargs)

    # ------------------------------------------------------------------------------ files (rl.checkpoint)
    def save(self, path: str, **kwargs: Any) -> Any:
        """Save architecture and weights (see :func:`rl.checkpoint.save_model`)."""
        return checkpoint.save_model(self, path, **kwargs)

    def save_weights(self, path: str, **kwargs: Any) -> Any:
        """Save the ``state_dict`` (see :func:`rl.checkpoint.save_weights`)."""
        return checkpoint.save_weights(self, path, **kwargs)

    def load_weights(self, path: str, **kwargs: Any) -> Any:
        """Load weights saved by :meth:`save_weights` (see :func:`rl.checkpoint.load_weights`)."""
        return checkpoint.load_weights(self, path, **kwargs)


class Sequential(Model):
    """A linear stack of layers: ``Sequential([Dense(64, activation="relu", input_shape=(4,)), Dense(2)])``.

    The model builds as soon as it knows its input shape (``input_shape=`` on the first layer, or an
    :func:`Input` / :class:`~rl.layers.InputLayer` first in the list), else on its first call.
    Once built every layer has a symbolic ``output``, so ``Model(seq.input, seq.layers[-2].output)``
    cuts a pretrained stack.

    Args:
        layers: the layers in order (optionally led by an ``Input``).
        name: the model's name (``"sequential"`` by default).
    """

    def __init__(self, layers: Sequence[Any] | None = None, name: str | None = None, trainable: bool = True,
                 **kwargs: Any):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._input_tensor: KerasTensor | None = None
        self._chain: list[KerasTensor] = []  # symbolic output of each layer, once built
        self._nodes: list[Node] = []
        for layer in layers or []:
            self.add(layer)

    def add(self, layer: Any) -> None:
        """Append a layer (or, first, an ``Input``); builds it at once when the input shape is known."""
        if isinstance(layer, InputLayer):
            layer = layer.output
        if isinstance(layer, KerasTensor):
            if self._layers or self._input_tensor is not None:
                raise ValueError(f"an Input can only be the first entry of Sequential '{self.name}'")
            if not isinstance(layer.node.layer, InputLayer):  # type: ignore[union-attr]
                raise ValueError("Sequential.add takes layers; a KerasTensor is accepted only from Input(...)")
            self._input_tensor = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        self._track(layer)
        batch_input_shape = layer._batch_input_shape
        if batch_input_shape is None and isinstance(layer, Model) and len(layer.inputs) == 1:
            batch_input_shape = layer.inputs[0].shape  # a nested built model brings its input shape along
        if self._input_tensor is None and len(self._layers) == 1 and batch_input_shape is not None:
            self._input_tensor = InputLayer(batch_input_shape=batch_input_shape,
                                            dtype=layer._dtype or self._dtype, name=f"{layer.name}_input").output
            if not self.built:
                self._dtype = self._input_tensor.dtype
        if self._input_tensor is not None:
            if not self._chain and len(self._layers) > 1:
                self._connect_all()
            else:
                self._connect(layer)

    def _connect(self, layer: Layer) -> None:
        prev = self._chain[-1] if self._chain else self._input_tensor
        out = layer(prev)
        if not isinstance(out, KerasTensor):
            raise ValueError(f"layer '{layer.name}' in Sequential '{self.name}' must have one output")
        self._chain.append(out)
        self._nodes.append(out.node)  # type: ignore[arg-type]
        self._dtype = self._input_tensor.dtype  # type: ignore[union-attr]
        self.built = True

    def _connect_all(self) -> None:
        for layer in self._layers:
            self._connect(layer)

    def build(self, input_shape: Any) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis included, e.g. ``(None, 4)``)."""
        if self._input_tensor is not None:
            return
        shape = (None, *tuple(input_shape)[1:])
        first_dtype = self._layers[0]._dtype if self._layers else None
        self._input_tensor = InputLayer(batch_input_shape=shape, dtype=self._dtype or first_dtype,
                                        name=f"{self._layers[0].name if self._layers else 'sequential'}_input").output
        self._connect_all()

    def pop(self) -> Layer:
        """Remove and return the last layer (e.g. a classifier head before transfer learning)."""
        if not self._layers:
            raise IndexError(f"Sequential '{self.name}' has no layers to pop")
        layer = self._layers.pop()
        if self._chain:
            node = self._chain.pop().node
            self._nodes.pop()
            layer._inbound_nodes = [n for n in layer._inbound_nodes if n is not node]
        return layer

    def __call__(self, inputs: Any, training: bool | None = None, **kwargs: Any) -> Any:
        """Forward pass on a tensor/array ``(N, ...)``, building the stack on the first call if needed."""
        if training is not None:
            with using_config("train", bool(training)):
                return self.__call__(inputs, **kwargs)
        if type(inputs) is not Tensor:
            if is_symbolic(inputs):
                return self._call_symbolic(inputs, kwargs)
            inputs = Tensor(inputs, dtype=self._dtype or np.float32)
        if not self.built:
            self.build(inputs.shape)
        for layer in self._layers:
            inputs = layer(inputs)
        return inputs

    def call(self, inputs: Any, **kwargs: Any) -> Any:
        """Run the layers in order on ``inputs`` (no building, no conversion: see ``__call__``)."""
        for layer in self._layers:
            inputs = layer(inputs)
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        """Output shape for ``input_shape`` (batch axis included), layer after layer."""
        shape = tuple(input_shape)
        for layer in self._layers:
            shape = tuple(layer.compute_output_shape(shape))
        return shape

    @property
    def _is_graph(self) -> bool:  # type: ignore[override]
        return self._input_tensor is not None if "_input_tensor" in self.__dict__ else False

    @_is_graph.setter
    def _is_graph(self, value: bool) -> None:
        pass  # a Sequential is a graph exactly when it knows its input

    @property
    def _inputs(self) -> list[KerasTensor]:  # type: ignore[override]
        return [self._input_tensor] if self._input_tensor is not None else []

    @property
    def _outputs(self) -> list[KerasTensor]:  # type: ignore[override]
        return [self._chain[-1]] if self._chain else ([self._input_tensor] if self._input_tensor else [])

    def get_config(self) -> dict[str, Any]:
        """``{name, layers}``; the first layer's config carries ``batch_input_shape`` (TF.js Sequential form)."""
        layers = [serialize(layer) for layer in self._layers]
        if layers and self._input_tensor is not None:
            layers[0]["config"]["batch_input_shape"] = list(self._input_tensor.shape)
        return {"name": self.name, "trainable": self.trainable, "layers": layers}

    @classmethod
    def from_config(cls, config: Any, custom_objects: dict[str, type] | None = None) -> Sequential:
        """Rebuild from :meth:`get_config`'s dict (or the legacy bare list of layer configs)."""
        if isinstance(config, list):
            config = {"layers": config}
        if "layers" not in config:
            raise ValueError(f"Sequential config is missing 'layers' (has {sorted(config)})")
        model = cls(name=config.get("name"))
        for entry in config["layers"]:
            model.add(deserialize(entry, custom_objects))
        if not config.get("trainable", True):
            model.trainable = False
        return model


# ================================================================================= module functions
def model_from_json(text: str, custom_objects: dict[str, type] | None = None) -> Model:
    """:func:`model_from_config` on a JSON string (as written by :meth:`Model.to_json`)."""
    return model_from_config(json.loads(text), custom_objects)


def load_model(path: str, **kwargs: Any) -> Model:
    """Load a model saved with :meth:`Model.save` (see :func:`rl.checkpoint.load_model`)."""
    return checkpoint.load_model(path, **kwargs)
