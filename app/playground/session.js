// What every section shares: the model and version picked in the header, and the model list.
import { call } from "./api.js";

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

const modelInput = () => $("model");
const versionInput = () => $("version");

export function model() {
  return modelInput().value.trim();
}

/** The pinned version, or undefined for the latest. */
export function version() {
  const value = versionInput().value.trim();
  return value === "" ? undefined : Number(value);
}

/** `{model, version}` for a request body (version left out when not pinned). */
export function modelFields() {
  const fields = { model: model() };
  if (version() !== undefined) fields.version = version();
  return fields;
}

export function pin(name, pinnedVersion) {
  modelInput().value = name;
  versionInput().value = pinnedVersion ?? "";
  modelInput().dispatchEvent(new Event("change", { bubbles: true }));
}

const listeners = [];

export function onModelsChanged(listener) {
  listeners.push(listener);
}

/** Fetch the model list, fill the picker's suggestions and tell every listener. */
export async function refreshModels() {
  const { models } = await call("GET", "/models", undefined, $("models-result"));
  const names = $("model-names");
  names.replaceChildren(
    ...models.map((m) => Object.assign(document.createElement("option"), { value: m.name })),
  );
  for (const listener of listeners) listener(models);
  return models;
}

/** Create an element with attributes and children. */
export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** Run `work` when `form` is submitted; the submit button is disabled meanwhile. */
export function onSubmit(form, work) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await work();
    } catch (error) {
      // `call` has shown it in the section; a programming error still reaches the console.
      if (!(error && error.status)) console.error(error);
    } finally {
      if (button) button.disabled = false;
    }
  });
}
