// 3 · The recurrent layer: every layer's state at every step (steps × hidden units), output,
// hn/cn with their shapes, the lesson's fact output[-1] == hn[-1], padding, and the weights.
import { call } from "./api.js";
import { heatmap } from "./plots.js";
import { $, element, modelFields, onSubmit } from "./session.js";

const tensorForm = () => document.querySelector("input[name=rnn-form]:checked").value === "tensor";

export function setUp() {
  onSubmit($("rnn-form"), forward);
  for (const radio of document.querySelectorAll("input[name=rnn-form]")) {
    radio.addEventListener("change", showForm);
  }
  $("rnn-preset").addEventListener("click", async () => {
    document.querySelector("input[name=rnn-form][value=tensor]").checked = true;
    $("rnn-batch-first").checked = false;
    showForm();
    await forward();
  });
}

function showForm() {
  const tensor = tensorForm();
  $("rnn-input").hidden = !tensor;
  $("rnn-text-1").hidden = tensor;
  $("rnn-text-2").hidden = tensor;
}

export const LESSON_LAYER = { input_size: 4, hidden_size: 5, num_layers: 2, seed: 0 };

function request() {
  const batchFirst = $("rnn-batch-first").checked;
  if (tensorForm()) {
    let input;
    try {
      input = JSON.parse($("rnn-input").value);
    } catch (error) {
      input = $("rnn-input").value; // the service's 422 says what is wrong with it
    }
    return { rnn: LESSON_LAYER, input, batch_first: batchFirst, return_weights: true, return_states: true };
  }
  const texts = [$("rnn-text-1").value, $("rnn-text-2").value].filter((t) => t.trim() !== "");
  return { ...modelFields(), texts, batch_first: batchFirst, return_states: true };
}

export async function forward() {
  const panel = $("rnn-result");
  const body = request();
  const answer = await call("POST", "/rnn/forward", body, panel);
  await render(panel, answer);
}

const shape = (tensor) => `[${tensor.shape.join(", ")}]`;

/** states[layer] for one text as steps × hidden, whatever the layout. */
function layerStates(answer, layer, text) {
  const values = answer.states.values[layer];
  return answer.batch_first ? values[text] : values.map((step) => step[text]);
}

function outputOf(answer, text) {
  const values = answer.output.values;
  return answer.batch_first ? values[text] : values.map((step) => step[text]);
}

async function render(panel, answer) {
  panel.querySelectorAll(":scope > :not(.request, .problem)").forEach((node) => node.remove());
  const [layers] = answer.states.shape;
  const batch = answer.hn.shape[1];
  const steps = answer.batch_first ? answer.states.shape[2] : answer.states.shape[1];
  const hidden = answer.hn.shape[2];
  const summary = element(
    "p",
    { class: "shapes" },
    `output ${shape(answer.output)} · hn ${shape(answer.hn)}${answer.cn ? ` · cn ${shape(answer.cn)}` : ""} · states ${shape(answer.states)} · ` +
      `batch_first ${answer.batch_first} · initial state: ${answer.initial_state}` +
      (answer.seed !== undefined && answer.seed !== null ? ` · seed ${answer.seed}` : "") +
      (answer.model ? ` · ${answer.model}@${answer.version}` : ""),
  );
  const grid = element("div", { class: "rnn-grid", style: `--columns: ${batch}` });
  panel.append(summary, grid);
  const plots = [];
  for (let text = 0; text < batch; text++) {
    const length = answer.lengths ? answer.lengths[text] : steps;
    // Text form: each step's token (and <pad> past the text's end); tensor form: the step.
    const rows = answer.tokens
      ? [...Array(steps).keys()].map((t) => (t >= length ? "<pad>" : answer.tokens[text][t]))
      : undefined;
    const column = element("div", { class: "rnn-column" });
    grid.append(column);
    const output = outputOf(answer, text);
    const hn = answer.hn.values.map((layer) => layer[text]);
    // The lesson's fact, checked on the numbers received: the top layer's state at the text's
    // last step is hn[-1] (past the end, output is padding).
    const difference = Math.max(...output[length - 1].map((v, j) => Math.abs(v - hn[layers - 1][j])));
    column.append(
      element(
        "p",
        { class: difference < 1e-6 ? "fact ok" : "fact", "data-testid": `rnn-fact-${text}` },
        `text ${text + 1}: output[${length - 1}] == hn[-1]  ${difference < 1e-6 ? "✓" : "✗"} (max |Δ| = ${difference.toExponential(1)})`,
      ),
    );
    for (let layer = layers - 1; layer >= 0; layer--) {
      const plot = element("div", { class: "plot", "data-testid": `rnn-layer-${layer}-text-${text}` });
      column.append(plot);
      const top = layer === layers - 1 ? " = output" : "";
      plots.push(
        heatmap(plot, layerStates(answer, layer, text), {
          title: `layer ${layer}, text ${text + 1}: ${steps} steps × ${hidden} units${top}`,
          rows,
          rowTitle: "step",
          columnTitle: "hidden unit",
        }),
      );
    }
    const hnPlot = element("div", { class: "plot", "data-testid": `rnn-hn-${text}` });
    column.append(hnPlot);
    plots.push(
      heatmap(hnPlot, hn, {
        title: `hn[:, ${text}] — ${layers} layers × ${hidden} (after step ${length - 1})`,
        rowTitle: "layer",
        columnTitle: "hidden unit",
      }),
    );
    if (answer.cn) {
      const cnPlot = element("div", { class: "plot" });
      column.append(cnPlot);
      plots.push(
        heatmap(cnPlot, answer.cn.values.map((layer) => layer[text]), {
          title: `cn[:, ${text}] — LSTM cell state`,
          rowTitle: "layer",
          columnTitle: "hidden unit",
        }),
      );
    }
  }
  if (answer.weights) {
    const details = element("details", { class: "weights" }, element("summary", {}, "weights (torch's names)"));
    const weights = element("div", { class: "weights-grid" });
    details.append(weights);
    panel.append(details);
    for (const [name, tensor] of Object.entries(answer.weights)) {
      const plot = element("div", { class: "plot" });
      weights.append(plot);
      const matrix = tensor.shape.length === 1 ? [tensor.values] : tensor.values;
      plots.push(heatmap(plot, matrix, { title: `${name} ${shape(tensor)}` }));
    }
  }
  await Promise.all(plots);
}
