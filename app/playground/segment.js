// 1 · Segment: tokens as chips over the text, ids from the model's vocabulary, OOV marked.
import { call } from "./api.js";
import { $, element, modelFields, onSubmit } from "./session.js";


const SETTINGS = ["mode", "hmm", "normalization", "lowercase", "drop-whitespace", "drop-punctuation"];

export function setUp() {
  onSubmit($("segment-form"), segment);
  $("segment-ids").addEventListener("change", useModelSettings);
  useModelSettings();
}

/** With a model, its own tokenizer settings apply (the ones its vocabulary was built with). */
function useModelSettings() {
  const fromModel = $("segment-ids").checked;
  for (const name of SETTINGS) $(`segment-${name}`).disabled = fromModel;
}

export async function segment() {
  const panel = $("segment-result");
  const body = { text: $("segment-text").value, offsets: true };
  if ($("segment-ids").checked) {
    Object.assign(body, modelFields());
  } else {
    Object.assign(body, {
      mode: $("segment-mode").value,
      hmm: $("segment-hmm").checked,
      normalization: $("segment-normalization").value,
      lowercase: $("segment-lowercase").checked,
      drop_whitespace: $("segment-drop-whitespace").checked,
      drop_punctuation: $("segment-drop-punctuation").checked,
    });
  }
  const answer = await call("POST", "/tokenize", body, panel);
  render(panel, body.text, answer);
  if (answer.model) showSettings(answer.tokenizer);
}

function showSettings(settings) {
  $("segment-mode").value = settings.mode;
  $("segment-hmm").checked = settings.hmm;
  $("segment-normalization").value = settings.normalization;
  $("segment-lowercase").checked = settings.lowercase;
  $("segment-drop-whitespace").checked = settings.drop_whitespace;
  $("segment-drop-punctuation").checked = settings.drop_punctuation;
}

function render(panel, original, answer) {
  // The service's offsets count code points; JS strings count UTF-16 units, which differ for
  // characters outside the BMP (rare CJK such as 𠀀, emoji). Slice an array of code points.
  const text = Array.from(original);
  const tokens = answer.tokens[0];
  const offsets = answer.offsets[0];
  const ids = answer.ids ? answer.ids[0] : null;
  const oov = answer.oov ? answer.oov[0] : null;
  const chips = element("div", { class: "chips", "data-testid": "segment-chips" });
  let position = 0;
  tokens.forEach((token, i) => {
    const [start, end] = offsets[i];
    // What segmentation dropped (spaces, punctuation) stays visible, greyed, between chips.
    if (start > position) {
      chips.append(element("span", { class: "gap" }, text.slice(position, start).join("")));
    }
    const chip = element(
      "span",
      { class: `chip${oov && oov[i] ? " oov" : ""}`, title: `[${start}, ${end})${oov && oov[i] ? " · OOV → <unk>" : ""}` },
      element("span", { class: "token" }, token),
      element("span", { class: "id" }, ids ? String(ids[i]) : `${start}:${end}`),
    );
    chips.append(chip);
    position = Math.max(position, end);
  });
  if (position < text.length) {
    chips.append(element("span", { class: "gap" }, text.slice(position).join("")));
  }
  const summary = element(
    "p",
    { class: "muted" },
    `${tokens.length} tokens · mode ${answer.tokenizer.mode} · ` +
      (ids ? `ids from ${answer.model}@${answer.version}${oov.some(Boolean) ? ` · ${oov.filter(Boolean).length} OOV` : ""}` : "no model: offsets shown"),
  );
  panel.querySelectorAll(":scope > .chips, :scope > p.muted").forEach((node) => node.remove());
  panel.append(chips, summary);
}
