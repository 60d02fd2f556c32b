// 2 · Vocabulary (paged), embedding vectors as a heatmap, nearest words of a clicked token.
import { call, query } from "./api.js";
import { bars, heatmap } from "./plots.js";
import { $, element, model, modelFields, onSubmit, version } from "./session.js";

const PAGE = 50;
let offset = 0;

export function setUp() {
  onSubmit($("embed-form"), embed);
  $("vocab-previous").addEventListener("click", () => showVocabulary(Math.max(0, offset - PAGE)));
  $("vocab-next").addEventListener("click", () => showVocabulary(offset + PAGE));
}

let vocabularyRequest = 0; // only the latest request's answer is shown

export async function showVocabulary(start = 0) {
  const request = ++vocabularyRequest;
  const panel = $("vocab-list").parentElement;
  const page = await call(
    "GET",
    `/models/${encodeURIComponent(model())}/vocab${query({ offset: start, limit: PAGE, version: version() })}`,
    undefined,
    panel,
  );
  if (request !== vocabularyRequest) return;
  offset = page.offset;
  $("vocab-size").textContent = `${page.size} tokens · ${page.model}@${page.version}`;
  $("vocab-range").textContent = `${page.offset}–${page.offset + page.tokens.length - 1}`;
  $("vocab-previous").disabled = page.offset === 0;
  $("vocab-next").disabled = page.offset + page.tokens.length >= page.size;
  const list = $("vocab-list");
  list.start = page.offset;
  list.replaceChildren(
    ...page.tokens.map((token) =>
      element("li", {}, element("button", { type: "button", class: "link", onclick: () => neighbours(token) }, token)),
    ),
  );
}

export async function embed() {
  const panel = $("embed-form").parentElement;
  const answer = await call("POST", "/embed", { ...modelFields(), text: $("embed-text").value }, panel);
  const tokens = answer.tokens[0].map((token, i) => (answer.oov[0][i] ? `${token} (OOV)` : token));
  const plot = $("embed-plot");
  await heatmap(plot, answer.vectors[0], {
    title: `embedding rows: [${answer.vectors[0].length} tokens × ${answer.dim} dims] · ${answer.model}@${answer.version}`,
    rows: tokens,
    rowTitle: "token",
    columnTitle: "dimension",
  });
  plot.removeAllListeners?.("plotly_click");
  plot.on("plotly_click", (event) => {
    const index = Number(String(event.points[0].y).split("·")[0]);
    if (answer.oov[0][index]) {
      $("neighbours-note").textContent =
        `“${answer.tokens[0][index]}” is not in the vocabulary: the model reads it as <unk>.`;
      return;
    }
    neighbours(answer.tokens[0][index]);
  });
}

export async function neighbours(token) {
  const panel = $("embed-form").parentElement;
  const path = `/models/${encodeURIComponent(model())}/neighbours${query({ token, k: 10, version: version() })}`;
  const answer = await call("GET", path, undefined, panel);
  $("neighbours-note").textContent = "";
  await bars(
    $("neighbours-plot"),
    answer.neighbours.map((n) => n.token),
    answer.neighbours.map((n) => n.similarity),
    { title: `nearest to “${answer.token}” (id ${answer.id}) by cosine similarity`, valueTitle: "cosine similarity" },
  );
}
