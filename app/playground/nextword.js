// 5 · Next word: top-k probabilities, generation streamed token by token, per-token surprisal.
import { call, events, Problem, send, showProblem } from "./api.js";
import { bars } from "./plots.js";
import { $, element, modelFields, onSubmit } from "./session.js";


export function setUp() {
  onSubmit($("predict-form"), predict);
  onSubmit($("generate-form"), generate);
  onSubmit($("score-form"), score);
}

export async function predict() {
  const panel = $("predict-result");
  const body = { ...modelFields(), text: $("predict-text").value, k: Number($("predict-k").value) };
  const answer = await call("POST", "/predict", body, panel);
  let plot = panel.querySelector(".plot");
  if (!plot) panel.append((plot = element("div", { class: "plot" })));
  await bars(
    plot,
    answer.candidates.map((c) => c.token),
    answer.candidates.map((c) => c.probability),
    { title: `P(next | ${answer.tokens.join(" ")}) · ${answer.model}@${answer.version}`, valueTitle: "probability" },
  );
}

export async function generate() {
  const panel = $("generate-result");
  const topK = $("generate-top-k").value;
  const seed = $("generate-seed").value;
  const body = {
    ...modelFields(),
    prompt: $("generate-prompt").value,
    max_tokens: Number($("generate-max-tokens").value),
    temperature: Number($("generate-temperature").value),
    stream: true,
  };
  if (topK !== "") body.top_k = Number(topK);
  if (seed !== "") body.seed = Number(seed);
  panel.querySelectorAll(":scope > :not(.request, .problem)").forEach((node) => node.remove());
  const output = element("p", { class: "generated", "data-testid": "generated" }, element("span", { class: "prompt" }, body.prompt));
  const status = element("p", { class: "muted" }, "generating…");
  panel.append(output, status);
  try {
    const response = await send("POST", "/generate", { body, panel });
    let count = 0;
    for await (const { event, data } of events(response)) {
      if (event === "token") {
        output.append(element("span", { class: "token", title: `id ${data.id}` }, data.token));
        status.textContent = `${++count} tokens…`;
      } else if (event === "done") {
        status.textContent = `${count} tokens · finish_reason ${data.finish_reason} · ${data.model}@${data.version}`;
      } else if (event === "error") {
        status.textContent = "";
        showProblem(panel, new Problem(data.status, data));
      }
    }
  } catch (error) {
    status.textContent = "";
    showProblem(panel, error);
    throw error;
  }
}

export async function score() {
  const panel = $("score-result");
  const answer = await call("POST", "/score", { ...modelFields(), text: $("score-text").value }, panel);
  const scored = answer.scores[0];
  // A text's first token has no score when the model has no <eos> to start from (null).
  const bits = scored.log_probs.map((lp) => (lp === null ? null : -lp / Math.LN2));
  const most = Math.max(1, ...bits.filter((b) => b !== null));
  const text = element("p", { class: "surprisal", "data-testid": "surprisal" });
  scored.tokens.forEach((token, i) => {
    // Darker red = more surprising (bits = −log2 p of the token given everything before it).
    const unscored = bits[i] === null;
    const strength = unscored ? 0 : Math.min(1, bits[i] / most);
    const title = unscored
      ? "no score: nothing before it to predict it from"
      : `${bits[i].toFixed(2)} bits · p = ${Math.exp(scored.log_probs[i]).toExponential(2)}`;
    text.append(
      element(
        "span",
        {
          class: `token${scored.oov[i] ? " oov" : ""}${unscored ? " unscored" : ""}`,
          style: unscored ? "" : `background: hsla(5, 85%, 50%, ${0.08 + 0.72 * strength})`,
          title: `${title}${scored.oov[i] ? " · OOV" : ""}`,
        },
        token,
      ),
    );
  });
  panel.querySelectorAll(":scope > :not(.request, .problem)").forEach((node) => node.remove());
  panel.append(
    text,
    element("p", { class: "muted" }, `perplexity ${scored.perplexity?.toFixed(1) ?? "—"} · colour: surprisal in bits (hover a token) · ${answer.model}@${answer.version}`),
  );
}
