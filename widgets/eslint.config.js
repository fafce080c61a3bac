// `npm run lint`: eslint's and typescript-eslint's recommended rules, with each file's globals
// (the page, the audio worklet's scope, Node for the build script and the tests).

import js from "@eslint/js";
import { defineConfig } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig(
  { ignores: ["node_modules/"] },
  js.configs.recommended,
  tseslint.configs.recommended,
  { files: ["src/**"], languageOptions: { globals: globals.browser } },
  { files: ["src/*.worklet.js"], languageOptions: { globals: globals.audioWorklet } },
  { files: ["*.js", "*.mjs", "test/**"], languageOptions: { globals: globals.node } },
);
