// Pictures, drawn with plotly.js served by the service from the installed `plotly` wheel.
// The library (≈4.6 MB) loads after the page is interactive; a plot waits for it.

let loading = null;

export function plotly() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/playground/vendor/plotly.min.js";
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => reject(new Error("plotly.js did not load"));
      document.head.append(script);
    });
  }
  return loading;
}

/** Plotly reads labels and titles as a little HTML (<b>, <br>, <a href>): tokens and texts
 * from the service or the user are escaped, so a token like "<a href=…>" shows as itself. */
export function escape(text) {
  return String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
const FONT = { family: "system-ui, 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif", size: 12 };

function layout(title, extra = {}) {
  return {
    title: { text: escape(title ?? ""), font: { size: 13 } },
    font: FONT,
    margin: { l: 70, r: 20, t: 36, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    ...extra,
  };
}

/** A heatmap of `z` (rows × columns), diverging around 0; rows from top to bottom. */
export async function heatmap(element, z, { title, rows, columns, rowTitle, columnTitle, height } = {}) {
  const Plotly = await plotly();
  // Named rows get their index too: a text may hold the same token twice, and plotly merges
  // equal category labels.
  const labels = rows ? rows.map((label, i) => `${i}·${escape(label)}`) : z.map((_, i) => String(i));
  const trace = {
    type: "heatmap",
    z,
    y: labels,
    x: columns ? columns.map(escape) : (z[0] || []).map((_, j) => j),
    colorscale: "RdBu",
    reversescale: true,
    zmid: 0,
    hovertemplate: "%{y}, %{x}: %{z:.4f}<extra></extra>",
    xgap: 1,
    ygap: 1,
  };
  const extra = {
    yaxis: { autorange: "reversed", title: { text: rowTitle || "" }, type: "category", automargin: true },
    xaxis: { title: { text: columnTitle || "" }, type: "category" },
    height: height || Math.max(160, 60 + 22 * z.length),
  };
  await Plotly.react(element, [trace], layout(title, extra), CONFIG);
  return element;
}

/** Horizontal bars, largest on top. */
export async function bars(element, labels, values, { title, valueTitle, format = ".3f" } = {}) {
  const Plotly = await plotly();
  const trace = {
    type: "bar",
    orientation: "h",
    x: values,
    y: labels.map(escape),
    text: values.map((v) => v.toFixed(3)),
    textposition: "auto",
    hovertemplate: `%{y}: %{x:${format}}<extra></extra>`,
    marker: { color: "#3b6fb6" },
  };
  const extra = {
    yaxis: { autorange: "reversed", type: "category", automargin: true },
    xaxis: { title: { text: valueTitle || "" } },
    height: Math.max(160, 60 + 24 * labels.length),
  };
  await Plotly.react(element, [trace], layout(title, extra), CONFIG);
}

/** Line charts: `series` is [{name, x, y, dash?, mode?}]. */
export async function lines(element, series, { title, xTitle, yTitle } = {}) {
  const Plotly = await plotly();
  const traces = series.map((s) => ({
    type: "scatter",
    mode: s.mode || "lines+markers",
    name: escape(s.name),
    x: s.x,
    y: s.y,
    line: { dash: s.dash || "solid" },
  }));
  const extra = {
    xaxis: { title: { text: xTitle || "" } },
    yaxis: { title: { text: yTitle || "" } },
    height: 300,
    legend: { orientation: "h", y: -0.25 },
  };
  await Plotly.react(element, traces, layout(title, extra), CONFIG);
}

/** Add points to the traces of a line chart drawn by `lines`. */
export async function extend(element, points) {
  const Plotly = await plotly();
  const indices = [];
  const xs = [];
  const ys = [];
  for (const [index, x, y] of points) {
    indices.push(index);
    xs.push([x]);
    ys.push([y]);
  }
  if (indices.length) await Plotly.extendTraces(element, { x: xs, y: ys }, indices);
}
