// 7 · The registry: every model with its versions, sizes, device and metrics; pin a version.
import { $, element, pin } from "./session.js";


const formatCount = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n));

export function render(models) {
  $("models-table").querySelector("tbody").replaceChildren(
    ...models.map((m) => {
      const versions = element("select", { "aria-label": `${m.name} version` });
      for (const v of [...m.versions].reverse()) {
        versions.append(element("option", { value: String(v) }, v === m.version ? `${v} (latest)` : String(v)));
      }
      const perplexity = m.metrics?.val_perplexity;
      return element(
        "tr",
        {},
        element("td", {}, element("code", {}, m.name)),
        element("td", {}, versions),
        element("td", {}, `${m.config.cell} ${m.config.num_layers}×${m.config.hidden_size}`),
        element("td", {}, formatCount(m.vocab_size)),
        element("td", { title: `${m.num_parameters} parameters` }, formatCount(m.num_parameters)),
        element("td", {}, m.device),
        element("td", {}, perplexity ? perplexity.toFixed(1) : "—"),
        element(
          "td",
          {},
          element(
            "button",
            {
              type: "button",
              onclick: () => {
                const chosen = Number(versions.value);
                pin(m.name, chosen === m.version ? undefined : chosen);
              },
            },
            "use",
          ),
        ),
      );
    }),
  );
}
