// The playground: wires the header (model, version, API key) to the seven sections.
import { apiKey, call, Problem, setApiKey } from "./api.js";
import * as embeddings from "./embeddings.js";
import * as models from "./models.js";
import * as nextWord from "./nextword.js";
import { plotly } from "./plots.js";
import * as rnn from "./rnn.js";
import * as segment from "./segment.js";
import { $, onModelsChanged, refreshModels } from "./session.js";
import * as train from "./train.js";
import * as windows from "./windows.js";


async function showStatus() {
  try {
    const info = await call("GET", "/info");
    const ready = await fetch("/ready").then((r) => r.json());
    $("service-status").textContent =
      `seqlab ${info.version} · torch ${info.torch} · ${info.device}` +
      (ready.ready ? "" : " · loading…") +
      (info.auth?.api_key_required_for_writes ? " · writes need the key" : "");
  } catch (error) {
    $("service-status").textContent =
      error instanceof Problem && error.status === 401
        ? "reads need the API key: type it here"
        : "service unreachable";
  }
}

function setUpSession() {
  const key = $("api-key");
  key.value = apiKey();
  key.addEventListener("change", () => {
    setApiKey(key.value.trim());
    load(); // what the page showed without the key (or with a wrong one), again
  });
  $("session").addEventListener("submit", (event) => event.preventDefault());
  const modelChanged = () => embeddings.showVocabulary(0).catch(() => {});
  $("model").addEventListener("change", modelChanged);
  $("version").addEventListener("change", modelChanged);
}

/** What the page shows before any click: the service, the models, the vocabulary, the jobs. */
function load() {
  return Promise.allSettled([showStatus(), refreshModels(), embeddings.showVocabulary(0), train.listJobs()]);
}

async function start() {
  setUpSession();
  for (const section of [segment, embeddings, rnn, windows, nextWord, train]) section.setUp();
  $("models-refresh").addEventListener("click", refreshModels);
  onModelsChanged(models.render);
  onModelsChanged(train.modelsChanged);
  document.body.dataset.ready = "true"; // the page answers clicks from here on
  await load();
  plotly(); // load the plotting library now, so the first picture does not wait for it
}

start();
