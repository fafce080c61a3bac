// Files esbuild bundles as text (build.mjs): their default export is the file's content.

declare module "*.css" {
  const text: string;
  export default text;
}

declare module "*.worklet.js" {
  const text: string;
  export default text;
}
