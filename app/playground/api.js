// The page's one door to the service: every request goes through `call`, which shows it (as
// curl) beside its section and turns a problem answer (RFC 9457) into an error with its detail.

const KEY = "seqlab-api-key";

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

export class Problem extends Error {
  constructor(status, body) {
    super(body.detail || body.title || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function shellQuote(text) {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The request as a curl command line; the key stays a variable, never printed. */
export function curl(method, path, body, contentType = "application/json") {
  const parts = ["curl -s"];
  if (method !== "GET" && !(method === "POST" && body !== undefined)) parts.push(`-X ${method}`);
  parts.push(shellQuote(location.origin + path));
  if (apiKey()) parts.push(`-H "authorization: Bearer $SEQLAB_API_KEY"`);
  if (body !== undefined) {
    parts.push(`-H 'content-type: ${contentType}'`);
    const text = typeof body === "string" ? body : JSON.stringify(body);
    parts.push(`--data-binary ${shellQuote(text.length > 2000 ? `${text.slice(0, 2000)}…` : text)}`);
  }
  return parts.join(" \\\n  ");
}

/** Show `request` in `panel` (a section's result area) with a copy button. */
export function showRequest(panel, method, path, body, contentType) {
  let box = panel.querySelector(":scope > .request");
  if (!box) {
    box = document.createElement("details");
    box.className = "request";
    box.innerHTML = `<summary>request</summary><button type="button" class="copy">copy curl</button><pre></pre>`;
    box.querySelector(".copy").addEventListener("click", () => {
      navigator.clipboard?.writeText(box.querySelector("pre").textContent);
    });
    panel.prepend(box);
  }
  box.querySelector("pre").textContent = curl(method, path, body, contentType);
}

/** Show a failure in `panel`: the problem's status, title and detail, never silence. */
export function showProblem(panel, error) {
  let line = panel.querySelector(":scope > .problem");
  if (!line) {
    line = document.createElement("p");
    line.className = "problem";
    line.setAttribute("role", "alert");
    panel.append(line);
  }
  if (error instanceof Problem && error.status === 401) {
    line.textContent = `401 — ${error.message}: type the key in the API key field above`;
  } else if (error instanceof Problem) {
    const fields = (error.body.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
    line.textContent = `${error.status} ${error.body.title || ""} — ${error.message}${fields && !error.message.includes(fields) ? ` (${fields})` : ""}`;
  } else {
    line.textContent = `request failed: ${error.message}`;
  }
  line.hidden = false;
}

export function clearProblem(panel) {
  const line = panel.querySelector(":scope > .problem");
  if (line) line.hidden = true;
}

function headers(contentType, extra = {}) {
  const result = { ...extra };
  if (contentType) result["content-type"] = contentType;
  const key = apiKey();
  if (key) result.authorization = `Bearer ${key}`;
  return result;
}

/** Send a request; return the fetch Response, or throw a Problem for a 4xx/5xx answer. */
export async function send(
  method,
  path,
  { body, contentType = "application/json", panel, headers: extra, signal } = {},
) {
  if (panel) {
    showRequest(panel, method, path, body, contentType);
    clearProblem(panel);
  }
  const response = await fetch(path, {
    method,
    headers: headers(body === undefined ? null : contentType, extra),
    signal,
    body: body === undefined ? undefined : typeof body === "string" || body instanceof Blob ? body : JSON.stringify(body),
  });
  if (!response.ok) {
    let problem;
    try {
      problem = await response.json();
    } catch {
      problem = { title: response.statusText };
    }
    throw new Problem(response.status, problem);
  }
  return response;
}

/** A JSON request whose answer is JSON. Failures are shown in `panel` and re-thrown. */
export async function call(method, path, body, panel) {
  try {
    const response = await send(method, path, { body, panel });
    return response.status === 204 ? null : await response.json();
  } catch (error) {
    if (panel) showProblem(panel, error);
    throw error;
  }
}

/** Read a server-sent-event answer event by event: `{event, data, id}`. fetch rather than
 * EventSource, which can neither POST nor send the API key. */
export async function* events(response, signal) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!signal?.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (signal?.aborted) return;
      if (data.length) yield { event, id, data: JSON.parse(data.join("\n")) };
    }
  }
}

/** `?a=1&b=2` of the defined values. */
export function query(values) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}
