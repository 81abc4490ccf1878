/**
 * The bundled deploy artifact, measured beside the plain build: esbuild bundles the built functions entry
 * (with google-auth-library, zod and pino) into one ESM file. The Functions Framework stays external: its
 * `main` loads the function, and the function must register into that same copy of the framework.
 */
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type * as Esbuild from 'esbuild';
import { PROJECT_ROOT, SCRATCH_DIR } from './child.js';
import type { Variant } from './cold-start.js';

const BUNDLE_DIR = resolve(SCRATCH_DIR, 'bundle');

/** Builds the bundle and returns the variant that serves it; no variant (and why) if esbuild is missing. */
export async function bundleVariant(ours: Variant): Promise<{ variant?: Variant; note: string }> {
  let esbuild: typeof Esbuild;
  try {
    esbuild = await import('esbuild');
  } catch {
    return { note: 'esbuild is not installed: the bundle was not measured' };
  }
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  mkdirSync(BUNDLE_DIR, { recursive: true });
  const outfile = resolve(BUNDLE_DIR, 'index.js');
  await esbuild.build({
    entryPoints: [resolve(PROJECT_ROOT, 'build/functions/index.js')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node22',
    minify: true,
    legalComments: 'none',
    logLevel: 'error',
    external: ['@google-cloud/functions-framework'],
    // CommonJS dependencies call require(); an ESM bundle needs one.
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
  writeFileSync(resolve(BUNDLE_DIR, 'package.json'), JSON.stringify({ type: 'module', main: 'index.js' }));
  const kb = Math.round(statSync(outfile).size / 1024);
  return {
    variant: {
      ...ours,
      id: 'oursBundle',
      label: `cloud-tasks-rerun, esbuild bundle (${kb} KB)`,
      source: BUNDLE_DIR,
      module: outfile,
    },
    note: `esbuild ${esbuild.version} bundle, ${kb} KB`,
  };
}
