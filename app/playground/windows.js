// 4 · The lesson's dataset: windows x = ids[i:i+L] → y = ids[i+1:i+L+1] drawn as aligned rows
// under the sequence, each coloured by the batch the loader puts it in.
import { call } from "./api.js";
import { $, element, modelFields, onSubmit } from "./session.js";

const number = (id) => Number($(id).value);

export function setUp() {
  onSubmit($("windows-form"), preview);
}

export async function preview() {
  const panel = $("windows-result");
  const body = {
    ...modelFields(),
    texts: [$("windows-text").value],
    seq_len: number("windows-seq-len"),
    stride: number("windows-stride"),
    batch_size: number("windows-batch-size"),
    shuffle: $("windows-shuffle").checked,
    seed: 0,
  };
  const answer = await call("POST", "/dataset/preview", body, panel);
  render(panel, answer, body.stride);
}

/** Which batch each window went to: batch rows are windows (shuffled or not). */
function batchOfWindow(answer) {
  const owner = new Array(answer.windows.length).fill(-1);
  answer.batches.forEach((batch, b) => {
    for (const row of batch.x) {
      const key = row.join(",");
      const index = answer.windows.findIndex((w, i) => owner[i] === -1 && w.x.join(",") === key);
      if (index >= 0) owner[index] = b;
    }
  });
  return owner;
}

function render(panel, answer, stride) {
  panel.querySelectorAll(":scope > :not(.request, .problem)").forEach((node) => node.remove());
  const tokens = answer.tokens || answer.ids.map(String);
  const owner = batchOfWindow(answer);
  const grid = element("div", { class: "windows", style: `--length: ${answer.ids.length}` });
  const cell = (column, text, className, title) =>
    element("span", { class: className, style: `grid-column: ${column + 2}`, title }, text);
  grid.append(element("span", { class: "label", style: "grid-column: 1" }, "ids"));
  answer.ids.forEach((id, i) => grid.append(cell(i, `${tokens[i]}`, "cell sequence", `position ${i} · id ${id}`)));
  answer.windows.forEach((window, k) => {
    const start = k * stride;
    const hue = owner[k] < 0 ? 0 : (owner[k] * 67) % 360;
    const style = `--hue: ${hue}`;
    const x = element("span", { class: "label", style: "grid-column: 1" }, `x${k}`);
    const y = element("span", { class: "label", style: "grid-column: 1" }, `y${k}`);
    grid.append(x);
    window.x.forEach((id, j) => {
      const node = cell(start + j, tokens[start + j] ?? String(id), "cell x", `x: id ${id} · batch ${owner[k]}`);
      node.setAttribute("style", `${node.getAttribute("style")}; ${style}`);
      grid.append(node);
    });
    grid.append(y);
    window.y.forEach((id, j) => {
      const node = cell(start + j + 1, tokens[start + j + 1] ?? String(id), "cell y", `y: id ${id} · batch ${owner[k]}`);
      node.setAttribute("style", `${node.getAttribute("style")}; ${style}`);
      grid.append(node);
    });
  });
  const legend = element(
    "p",
    { class: "muted" },
    `${answer.num_windows} windows → ${answer.num_batches} batches of x [batch, seq_len] and y shifted by one` +
      (answer.windows.length < answer.num_windows ? ` (first ${answer.windows.length} shown)` : "") +
      " · colour = batch",
  );
  panel.append(legend, element("div", { class: "scroll" }, grid));
}
