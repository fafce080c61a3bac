// The stylesheet (style.css, bundled as text) goes beside each client it styles.

import CSS from "./style.css";

const STYLE_ID = "rico-voice-client-style";

/**
 * Put the stylesheet next to ``el``: in its shadow root if the host renders widgets in one,
 * else in the document head. Once per root (several clients share it); the text is always
 * rewritten so a hot-reloaded bundle brings its new CSS along.
 */
export function injectStyle(el: HTMLElement): void {
  const root = el.getRootNode();
  const shadow = root instanceof ShadowRoot ? root : null;
  const doc = el.ownerDocument;
  let style = (shadow ?? doc).querySelector<HTMLStyleElement>(`style#${STYLE_ID}`);
  if (!style) {
    style = doc.createElement("style");
    style.id = STYLE_ID;
    (shadow ?? doc.head).appendChild(style);
  }
  if (style.textContent !== CSS) style.textContent = CSS;
}
