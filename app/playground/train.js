// 6 · Train: upload a corpus, start a job, watch its loss and validation perplexity live from the
// job's event stream (with the unigram baseline), cancel it, list jobs.
import { call, events, Problem, send, showProblem } from "./api.js";
import { extend, lines } from "./plots.js";
import { $, element, onSubmit, pin, refreshModels } from "./session.js";

const number = (id) => Number($(id).value);
let watching = null; // {jobId, controller}
let known = new Set(); // model names in the registry

export function setUp() {
  onSubmit($("train-form"), train);
  $("train-cancel").addEventListener("click", cancel);
  $("jobs-refresh").addEventListener("click", listJobs);
  $("train-sample").addEventListener("change", () => {
    $("train-file").value = ""; // a sample replaces a chosen file
    loadSample();
  });
  $("train-file").addEventListener("change", () => ($("train-sample").value = ""));
  $("train-text").addEventListener("input", () => ($("train-sample").value = ""));
  loadSample();
}

export function modelsChanged(models) {
  known = new Set(models.map((m) => m.name));
}

async function loadSample() {
  const name = $("train-sample").value;
  if (!name) return;
  // The service's own sample texts (app/samples), the ones its demo models were made from.
  const response = await fetch(`/playground/samples/${name}`);
  $("train-text").value = await response.text();
}

async function corpusText() {
  const file = $("train-file").files[0];
  return file ? await file.text() : $("train-text").value;
}

export async function train() {
  const panel = $("train-result");
  const name = $("train-model").value.trim();
  const text = await corpusText();
  let corpus;
  try {
    const response = await send("POST", "/corpora", { body: text, contentType: "text/plain; charset=utf-8", panel });
    corpus = await response.json();
  } catch (error) {
    showProblem(panel, error);
    throw error;
  }
  const body = {
    model: name,
    corpus_id: corpus.corpus_id,
    seq_len: number("train-seq-len"),
    batch_size: number("train-batch-size"),
    epochs: number("train-epochs"),
    lr: number("train-lr"),
    max_seconds: number("train-max-seconds"),
    // Small corpora have few steps an epoch: report every one, so the curve grows visibly.
    log_every: corpus.chars < 20000 ? 1 : 20,
  };
  if (!known.has(name)) {
    body.create = {
      cell: $("train-cell").value,
      embedding_dim: number("train-embedding-dim"),
      hidden_size: number("train-hidden-size"),
      num_layers: number("train-num-layers"),
    };
  }
  const job = await call("POST", "/train", body, panel);
  $("train-status").textContent = `${job.job_id}: ${job.status}${body.create ? "" : ` (training ${name} further)`}`;
  // Followed in the background (the form is free again at once); once published, the new
  // version is picked for the other sections.
  watch(job.job_id, { pinWhenDone: true });
  listJobs();
}

async function cancel() {
  if (!watching) return;
  await call("DELETE", `/train/${watching.jobId}`, undefined, $("train-result"));
}

function epochsOf(progress) {
  const perEpoch = progress.total_steps / Math.max(1, progress.epochs);
  return perEpoch > 0 ? progress.step / perEpoch : 0;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const RETRIES = 10;

/** Follow a job's event stream to its `done`, reconnecting with `Last-Event-ID` (the service
 * then sends only what was missed) when the connection drops. A failing handler is a bug, not
 * a dropped connection: it is thrown, never retried past. */
async function follow(jobId, handlers, signal) {
  let lastId = null;
  let failures = 0;
  while (!signal.aborted) {
    let response;
    try {
      const headers = lastId ? { "last-event-id": lastId } : {};
      response = await send("GET", `/train/${jobId}/events`, { headers, signal });
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof Problem || ++failures > RETRIES) throw error;
      await sleep(1000 * failures);
      continue;
    }
    if (response.status === 204) return; // it had already sent `done`
    let stream;
    try {
      stream = events(response, signal);
      for (;;) {
        const next = await stream.next();
        if (next.done || signal.aborted) break;
        const { event, id, data } = next.value;
        failures = 0; // the connection works
        if (id) lastId = id;
        await handlers[event]?.(data);
        if (event === "done") return;
      }
    } catch (error) {
      if (signal.aborted) return;
      if (!(error instanceof TypeError && String(error.message).match(/network|fetch|body/i))) {
        throw error; // a handler's bug: shown, not hidden behind a reconnection
      }
    }
    if (signal.aborted) return;
    if (++failures > RETRIES) throw new Error(`the event stream of ${jobId} keeps closing`);
    await sleep(1000 * failures); // the stream ended without `done`: reconnect, after a pause
  }
}

/** Draw a job's history so far, then follow its events until `done`. Watching another job
 * stops this one: every handler checks that it still owns the pictures. */
export async function watch(jobId, { pinWhenDone = false } = {}) {
  if (watching) watching.controller.abort();
  const controller = new AbortController();
  const signal = controller.signal;
  watching = { jobId, controller };
  const lossPlot = $("train-loss-plot");
  const perplexityPlot = $("train-perplexity-plot");
  $("train-cancel").disabled = false;
  const status = (job) => {
    const p = job.progress || {};
    const fraction = p.fraction !== undefined ? ` · ${(100 * p.fraction).toFixed(0)} %` : "";
    const loss = p.loss !== undefined && p.loss !== null ? ` · loss ${p.loss.toFixed(3)}` : "";
    $("train-status").textContent =
      `${jobId} · ${job.status} · epoch ${p.epoch ?? 0}/${p.epochs ?? "?"} · ` +
      `step ${p.step ?? 0}/${p.total_steps ?? "?"}${fraction}${loss}`;
  };
  const draw = async (job) => {
    const history = job.metrics.history || { steps: [], epochs: [] };
    const p = job.progress || {};
    const stepsPerEpoch = p.total_steps && p.epochs ? p.total_steps / p.epochs : 1;
    await lines(
      lossPlot,
      [
        {
          name: "train loss",
          x: history.steps.map((s) => s.step / stepsPerEpoch),
          y: history.steps.map((s) => s.loss),
          mode: "lines",
        },
        {
          name: "validation loss",
          x: history.epochs.map((e) => e.epoch),
          y: history.epochs.map((e) => e.val_loss),
        },
      ],
      { title: `${job.model}: loss (nats per token)`, xTitle: "epoch", yTitle: "cross-entropy" },
    );
    const unigram = job.metrics.unigram_perplexity ?? job.data?.unigram_perplexity;
    const epochs = p.epochs || history.epochs.length || 1;
    const series = [
      {
        name: "validation perplexity",
        x: history.epochs.map((e) => e.epoch),
        y: history.epochs.map((e) => e.val_perplexity),
      },
    ];
    if (unigram) {
      series.push({ name: "unigram baseline", x: [0, epochs], y: [unigram, unigram], dash: "dash", mode: "lines" });
    }
    await lines(perplexityPlot, series, { title: "validation perplexity", xTitle: "epoch", yTitle: "perplexity" });
  };
  // Each handler runs only while this watch owns the section (another job's click aborts it).
  const owned = (handler) => async (data) => {
    if (!signal.aborted) await handler(data);
  };
  const handlers = {
    state: owned(async (job) => {
      status(job);
      await draw(job);
    }),
    progress: owned(async (progress) => {
      status({ status: progress.status, progress });
      if (progress.loss !== null && progress.loss !== undefined) {
        await extend(lossPlot, [[0, epochsOf(progress), progress.loss]]);
      }
    }),
    epoch: owned(async (epoch) => {
      if (epoch.val_loss !== null) await extend(lossPlot, [[1, epoch.epoch, epoch.val_loss]]);
      if (epoch.val_perplexity !== null) await extend(perplexityPlot, [[0, epoch.epoch, epoch.val_perplexity]]);
    }),
    done: owned(async (job) => {
      status(job);
      $("train-cancel").disabled = true;
      await draw(job); // the whole history, with any points the live stream skipped
      if (job.error) $("train-status").textContent += ` · ${job.error}`;
      listJobs();
      await refreshModels();
      if (pinWhenDone && !signal.aborted && job.status === "succeeded" && job.version) {
        pin(job.model, job.version);
      }
    }),
  };
  try {
    await follow(jobId, handlers, signal);
  } catch (error) {
    if (signal.aborted) return;
    $("train-cancel").disabled = true;
    $("train-status").textContent += " · stopped following the job (see below)";
    showProblem($("train-result"), error);
    console.error(error);
  }
}

export async function listJobs() {
  const { jobs } = await call("GET", "/train", undefined, $("jobs-result"));
  const body = $("jobs").querySelector("tbody");
  body.replaceChildren(
    ...jobs.slice(0, 20).map((job) =>
      element(
        "tr",
        {},
        element("td", {}, element("code", {}, job.job_id)),
        element("td", {}, job.version ? `${job.model}@${job.version}` : job.model),
        element("td", { class: `job-${job.status}` }, job.status),
        element("td", {}, `${((job.progress?.fraction ?? 0) * 100).toFixed(0)} %`),
        element("td", {}, job.metrics?.val_perplexity ? job.metrics.val_perplexity.toFixed(1) : "—"),
        element("td", {}, element("button", { type: "button", onclick: () => watch(job.job_id) }, "curves")),
      ),
    ),
  );
}
