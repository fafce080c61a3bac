// Styles scoped to .rico-voice-client, built on JupyterLab's theme variables so the client
// reads well in light and dark themes alike.

const CSS = `
.rico-voice-client {
  font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-content-font-size1, 14px);
  color: var(--jp-ui-font-color0, #111);
  background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color1, #bbb);
  border-radius: 6px;
  max-width: 640px;
  display: flex;
  flex-direction: column;
  max-height: 420px;
}
.rico-voice-client .rico-header {
  display: flex; flex-wrap: wrap; gap: 6px; align-items: center;
  padding: 6px 8px; border-bottom: 1px solid var(--jp-border-color2, #ddd);
  background: var(--jp-layout-color2, #eee);
}
.rico-voice-client .rico-role { font-weight: 600; }
.rico-voice-client .rico-pill {
  border-radius: 999px; padding: 1px 8px; font-size: 0.85em;
  border: 1px solid var(--jp-border-color1, #999);
  color: var(--jp-ui-font-color0, #111); background: var(--jp-layout-color0, #fff);
}
.rico-voice-client .rico-model-badge.rico-local {
  border: 2px solid var(--jp-warn-color1, #b26b00); font-weight: 600;
}
.rico-voice-client .rico-spacer { flex: 1; }
.rico-voice-client button {
  font: inherit; cursor: pointer; border-radius: 4px; padding: 2px 10px;
  border: 1px solid var(--jp-border-color1, #999);
  color: var(--jp-ui-font-color0, #111); background: var(--jp-layout-color0, #fff);
}
.rico-voice-client button:disabled { opacity: 0.5; cursor: default; }
.rico-voice-client .rico-meter {
  width: 60px; height: 8px; border-radius: 4px; overflow: hidden;
  background: var(--jp-layout-color3, #ccc);
}
.rico-voice-client .rico-meter-fill {
  height: 100%; width: 0%; background: var(--jp-brand-color1, #1976d2);
  transition: width 80ms linear;
}
.rico-voice-client .rico-error {
  padding: 4px 8px; color: var(--jp-ui-font-color0, #111);
  background: var(--jp-layout-color0, #fff);
  border-left: 4px solid var(--jp-error-color1, #d32f2f);
}
.rico-voice-client .rico-error:empty { display: none; }
.rico-voice-client .rico-transcript {
  flex: 1; overflow-y: auto; padding: 8px; display: flex; flex-direction: column; gap: 4px;
  min-height: 120px; background: var(--jp-layout-color0, #fff);
}
.rico-voice-client .rico-line {
  max-width: 85%; padding: 4px 8px; border-radius: 8px; white-space: pre-wrap;
  color: var(--jp-ui-font-color0, #111); background: var(--jp-layout-color2, #eee);
}
.rico-voice-client .rico-line.rico-user {
  align-self: flex-end; background: var(--jp-layout-color3, #ddd);
}
.rico-voice-client .rico-line.rico-interim { color: var(--jp-ui-font-color1, #333); font-style: italic; }
.rico-voice-client .rico-who { font-size: 0.75em; font-weight: 600; display: block; }
.rico-voice-client .rico-composer {
  display: flex; gap: 6px; padding: 6px 8px; border-top: 1px solid var(--jp-border-color2, #ddd);
}
.rico-voice-client .rico-text-input {
  flex: 1; font: inherit; padding: 2px 6px; border-radius: 4px;
  border: 1px solid var(--jp-border-color1, #999);
  color: var(--jp-ui-font-color0, #111); background: var(--jp-layout-color0, #fff);
}
`;

/** Add the stylesheet once per document (several clients may share a page). */
export function injectStyle(doc: Document): void {
  if (doc.getElementById("rico-voice-client-style")) return;
  const style = doc.createElement("style");
  style.id = "rico-voice-client-style";
  style.textContent = CSS;
  doc.head.appendChild(style);
}
