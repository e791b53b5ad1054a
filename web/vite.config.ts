import { defineConfig } from "vitest/config";

// The bundle is written into the Python package, which serves it at "/" and ships it in the
// wheel. Names carry no content hash so a rebuild of the same source gives the same files.
const api = process.env.RLM_API ?? "http://127.0.0.1:8000";

export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    outDir: "../src/rlm_engine/server/static",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    rollupOptions: {
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  server: {
    proxy: Object.fromEntries(
      ["/api", "/v1", "/healthz", "/readyz", "/openapi.json"].map((p) => [p, api]),
    ),
  },
  test: { include: ["src/**/*.test.ts"] },
});
