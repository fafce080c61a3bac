// The voice client as a plain web page (`rico-lab serve-client`, rico_lab/web_client.py): a
// stand-in for anywidget's model over the state POST /join returns, handed to the widget's
// own render. Nothing goes back to the server. The widget is the notebook's very bundle,
// ./voice_client.js beside this script (build.mjs keeps it out of page.js).

import type { AnyModel, Experimental, Host } from "@anywidget/types";

import widget from "./index";
import type { VoiceClientState } from "./state";

/** anywidget's event handler (its most general `on` overload). */
type Callback = Parameters<AnyModel["on"]>[1];

/** What needs a kernel (anywidget's invoke, other widgets' models): there is none here. */
const noKernel = (): Promise<never> => Promise.reject(new Error("this page has no kernel"));

/** anywidget's model over ``state``: a change calls its listeners and stays in the page. */
function pageModel(state: VoiceClientState): AnyModel<VoiceClientState> {
  const listeners = new Map<string, Callback[]>();
  return {
    get: (key) => state[key],
    set: (key, value) => {
      state[key] = value;
      for (const callback of listeners.get(`change:${key}`) ?? []) callback();
    },
    save_changes: () => undefined,
    send: () => undefined,
    on: (event: string, callback: Callback) => {
      listeners.set(event, [...(listeners.get(event) ?? []), callback]);
    },
    off: (event, callback) => {
      if (!event) listeners.clear();
      else if (!callback) listeners.delete(event);
      else listeners.set(event, (listeners.get(event) ?? []).filter((c) => c !== callback));
    },
    widget_manager: { get_model: noKernel },
  };
}

async function main(el: HTMLElement): Promise<void> {
  const response = await fetch("join", { method: "POST" });
  if (!response.ok) {
    el.textContent = `Could not start a conversation: HTTP ${response.status}`;
    return;
  }
  const state = (await response.json()) as VoiceClientState;
  const host: Host = { getWidget: noKernel, getModel: noKernel };
  const experimental: Experimental = { invoke: noKernel };
  const { signal } = new AbortController(); // the page's client lives as long as the page
  await widget.render({ model: pageModel(state), el, signal, host, experimental });
}

void main(document.getElementById("client") as HTMLElement);
