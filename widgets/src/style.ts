// Styles scoped to .rico-voice-client, built on JupyterLab's theme variables (with light
// fallbacks for other hosts). Text is always a --jp-ui-font-color on a --jp-layout-color, the
// pairs the themes keep readable; colours that do not flip with the theme (brand, warn,
// success, error, info) only mark borders and dots, except the local-model badge, which is
// black on orange in every theme so it cannot be missed.

const CSS = `
.rico-voice-client {
  box-sizing: border-box;
  display: flex;
  flex-direction: column;
  max-width: 720px;
  max-height: 420px;
  overflow: hidden;
  font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-content-font-size1, 14px);
  line-height: 1.4;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color1, #bdbdbd);
  border-radius: 6px;
}
.rico-voice-client *, .rico-voice-client *::before, .rico-voice-client *::after {
  box-sizing: border-box;
}
.rico-voice-client [hidden] { display: none !important; }
.rico-voice-client .rico-header, .rico-voice-client .rico-controls {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  gap: 6px;
  padding: 6px 8px;
  border-bottom: 1px solid var(--jp-border-color2, #e0e0e0);
}
.rico-voice-client .rico-header { background: var(--jp-layout-color2, #eee); }
/* only the transcript gives way when the client is full */
.rico-voice-client > :not(.rico-transcript) { flex-shrink: 0; }
.rico-voice-client .rico-role { font-weight: 600; }
.rico-voice-client .rico-spacer { flex: 1; }
.rico-voice-client .rico-pill {
  display: inline-flex;
  align-items: center;
  gap: 5px;
  padding: 1px 8px;
  border-radius: 999px;
  font-size: 0.85em;
  white-space: nowrap;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color0, #fff);
  border: 1px solid var(--jp-border-color1, #bdbdbd);
}
.rico-voice-client .rico-model-badge.rico-local {
  font-weight: 700;
  color: #000;
  background: var(--jp-warn-color1, #f57c00);
  border-color: var(--jp-warn-color0, #e65100);
}
.rico-voice-client .rico-status::before, .rico-voice-client .rico-state::before {
  content: "";
  width: 8px;
  height: 8px;
  border-radius: 50%;
  background: var(--rico-dot, var(--jp-layout-color4, #757575));
}
.rico-voice-client .rico-status[data-value="connected"],
.rico-voice-client .rico-state[data-value="listening"] {
  --rico-dot: var(--jp-success-color1, #388e3c);
}
.rico-voice-client .rico-status[data-value="connecting"],
.rico-voice-client .rico-state[data-value="thinking"] {
  --rico-dot: var(--jp-warn-color1, #f57c00);
}
.rico-voice-client .rico-status[data-value="error"] { --rico-dot: var(--jp-error-color1, #d32f2f); }
.rico-voice-client .rico-state[data-value="speaking"] {
  --rico-dot: var(--jp-brand-color1, #1976d2);
}
.rico-voice-client .rico-state[data-value="speaking"]::before,
.rico-voice-client .rico-state[data-value="thinking"]::before {
  animation: rico-pulse 1s ease-in-out infinite;
}
@keyframes rico-pulse { 50% { opacity: 0.3; } }
@media (prefers-reduced-motion: reduce) {
  .rico-voice-client .rico-state::before { animation: none !important; }
}
.rico-voice-client button {
  font: inherit;
  font-size: 0.9em;
  padding: 2px 10px;
  border-radius: 4px;
  cursor: pointer;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color0, #fff);
  border: 1px solid var(--jp-border-color1, #bdbdbd);
}
.rico-voice-client button:hover:not(:disabled) { background: var(--jp-layout-color2, #eee); }
.rico-voice-client button:disabled { opacity: 0.5; cursor: default; }
.rico-voice-client button:focus-visible, .rico-voice-client .rico-text-input:focus,
.rico-voice-client .rico-field-input:focus {
  outline: 2px solid var(--jp-brand-color1, #1976d2);
  outline-offset: 1px;
}
.rico-voice-client .rico-connect {
  font-weight: 600;
  border-color: var(--jp-brand-color1, #1976d2);
}
.rico-voice-client .rico-mic[aria-pressed="true"] {
  border-color: var(--jp-success-color1, #388e3c);
}
.rico-voice-client .rico-enable-audio {
  font-weight: 600;
  border: 2px solid var(--jp-warn-color1, #f57c00);
}
.rico-voice-client .rico-meter-label { font-size: 0.8em; color: var(--jp-ui-font-color1, #222); }
.rico-voice-client .rico-latency {
  margin-right: 6px;
  font-size: 0.8em;
  white-space: nowrap;
  color: var(--jp-ui-font-color1, #222);
  font-variant-numeric: tabular-nums;
}
.rico-voice-client .rico-meter {
  width: 80px;
  height: 8px;
  border-radius: 4px;
  overflow: hidden;
  background: var(--jp-layout-color3, #bdbdbd);
}
.rico-voice-client .rico-meter-fill {
  width: 0%;
  height: 100%;
  background: var(--jp-brand-color1, #1976d2);
  transition: width 60ms linear;
}
.rico-voice-client .rico-error {
  padding: 4px 8px;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color1, #fff);
  border-left: 4px solid var(--jp-error-color1, #d32f2f);
  border-bottom: 1px solid var(--jp-border-color2, #e0e0e0);
}
.rico-voice-client .rico-error:empty { display: none; }
.rico-voice-client .rico-notice {
  padding: 4px 8px;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color1, #fff);
  border-left: 4px solid var(--jp-info-color1, #0288d1);
  border-bottom: 1px solid var(--jp-border-color2, #e0e0e0);
}
.rico-voice-client .rico-notice[data-kind="ending"] {
  border-left-color: var(--jp-warn-color1, #f57c00);
}
.rico-voice-client .rico-notice:empty { display: none; }
.rico-voice-client .rico-role-badge {
  font-family: var(--jp-code-font-family, monospace);
  font-size: 0.8em;
}
.rico-voice-client .rico-panels {
  flex: 0 0 auto;
  max-height: 180px;
  overflow-y: auto;
  display: flex;
  flex-direction: column;
  gap: 6px;
  padding: 6px 8px;
  background: var(--jp-layout-color1, #fff);
  border-bottom: 1px solid var(--jp-border-color2, #e0e0e0);
}
.rico-voice-client .rico-panels:empty { display: none; }
.rico-voice-client .rico-panel {
  padding: 4px 8px;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color0, #fff);
  border-left: 3px solid var(--jp-brand-color1, #1976d2);
}
.rico-voice-client .rico-panel-title { font-weight: 600; margin-bottom: 2px; }
.rico-voice-client .rico-markdown > :first-child { margin-top: 0; }
.rico-voice-client .rico-markdown > :last-child { margin-bottom: 0; }
.rico-voice-client .rico-markdown p, .rico-voice-client .rico-markdown ul,
.rico-voice-client .rico-markdown ol { margin: 0.3em 0; }
.rico-voice-client .rico-markdown ul, .rico-voice-client .rico-markdown ol { padding-left: 1.4em; }
.rico-voice-client .rico-markdown a {
  color: var(--jp-content-link-color, var(--jp-brand-color1, #1976d2));
}
.rico-voice-client .rico-markdown code {
  font-family: var(--jp-code-font-family, monospace);
  background: var(--jp-layout-color2, #eee);
  padding: 0 3px;
  border-radius: 3px;
}
.rico-voice-client .rico-table { border-collapse: collapse; font-size: 0.9em; }
.rico-voice-client .rico-table td {
  padding: 2px 6px;
  border: 1px solid var(--jp-border-color2, #e0e0e0);
}
.rico-voice-client .rico-table thead td {
  font-weight: 600;
  background: var(--jp-layout-color2, #eee);
}
.rico-voice-client .rico-choices { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 4px; }
.rico-voice-client .rico-choice.rico-chosen {
  font-weight: 600;
  border: 2px solid var(--jp-brand-color1, #1976d2);
}
/* the answer given stays readable once the question is closed */
.rico-voice-client .rico-choice.rico-chosen:disabled { opacity: 1; }
.rico-voice-client .rico-image {
  display: block;
  max-width: 100%;
  max-height: 150px;
  object-fit: contain;
}
.rico-voice-client .rico-form {
  display: flex;
  flex-wrap: wrap;
  align-items: flex-end;
  gap: 6px 10px;
  margin-top: 4px;
}
.rico-voice-client .rico-field { display: flex; flex-direction: column; gap: 2px; }
.rico-voice-client .rico-field-label {
  font-size: 0.85em;
  color: var(--jp-ui-font-color1, #222);
}
.rico-voice-client .rico-field-input {
  font: inherit;
  width: 12em;
  padding: 2px 6px;
  border-radius: 4px;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color1, #bdbdbd);
}
.rico-voice-client .rico-field-input:disabled { color: var(--jp-ui-font-color1, #222); }
.rico-voice-client .rico-submit { font-weight: 600; border-color: var(--jp-brand-color1, #1976d2); }
.rico-voice-client .rico-notes {
  margin: 0;
  padding-left: 1.4em;
  max-height: 96px;
  overflow-y: auto;
}
.rico-voice-client .rico-note + .rico-note { margin-top: 3px; }
.rico-voice-client .rico-note-title { font-weight: 600; }
.rico-voice-client .rico-note-text, .rico-voice-client .rico-panel-title {
  white-space: pre-wrap;
  overflow-wrap: anywhere;
}
.rico-voice-client .rico-transcript {
  flex: 1 1 auto;
  min-height: 90px;
  overflow-y: auto;
  display: flex;
  flex-direction: column;
  gap: 4px;
  padding: 8px;
  background: var(--jp-layout-color0, #fff);
}
.rico-voice-client .rico-line {
  align-self: flex-start;
  max-width: 85%;
  padding: 3px 8px;
  border-radius: 8px;
  white-space: pre-wrap;
  overflow-wrap: anywhere;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color2, #eee);
  border-left: 3px solid var(--jp-success-color1, #388e3c);
}
.rico-voice-client .rico-line.rico-user {
  align-self: flex-end;
  border-left: none;
  border-right: 3px solid var(--jp-brand-color1, #1976d2);
}
.rico-voice-client .rico-line.rico-interim {
  color: var(--jp-ui-font-color2, #555);
  font-style: italic;
}
.rico-voice-client .rico-who {
  display: block;
  font-size: 0.75em;
  font-weight: 600;
  font-style: normal;
  color: var(--jp-ui-font-color1, #222);
}
.rico-voice-client .rico-composer {
  display: flex;
  gap: 6px;
  padding: 6px 8px;
  border-top: 1px solid var(--jp-border-color2, #e0e0e0);
}
.rico-voice-client .rico-text-input {
  flex: 1;
  min-width: 0;
  font: inherit;
  padding: 3px 6px;
  border-radius: 4px;
  color: var(--jp-ui-font-color0, #000);
  background: var(--jp-layout-color0, #fff);
  border: 1px solid var(--jp-border-color1, #bdbdbd);
}
.rico-voice-client .rico-text-input::placeholder { color: var(--jp-ui-font-color2, #555); }
`;

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
