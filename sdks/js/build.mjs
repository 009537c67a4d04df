// Builds dist/: type-checks with tsc (which also writes the declarations), then bundles with
// esbuild. `npm run build` runs this; nothing here downloads anything.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');

rmSync(join(root, 'build'), { recursive: true, force: true });
rmSync(dist, { recursive: true, force: true });
// tsc is the type checker; its JavaScript in build/ is what the unit tests import for internals.
try {
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
    stdio: 'inherit',
  });
} catch {
  console.error('build: tsc found errors (above)');
  process.exit(1);
}

const common = {
  entryPoints: [join(root, 'src/index.ts')],
  bundle: true,
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
};
await build({ ...common, format: 'esm', outfile: join(dist, 'herald.mjs') });
await build({ ...common, format: 'iife', globalName: 'Herald', minify: true, outfile: join(dist, 'herald.global.js') });

// One declaration entry point beside the bundle; the per-module declarations stay in types/.
mkdirSync(join(dist, 'types'), { recursive: true });
cpSync(join(root, 'build'), join(dist, 'types'), { recursive: true, filter: (p) => !p.endsWith('.js') });
// herald.d.ts for the package's exports; herald.d.mts for a relative import of herald.mjs.
writeFileSync(join(dist, 'herald.d.ts'), "export * from './types/index.js';\n");
writeFileSync(join(dist, 'herald.d.mts'), "export * from './types/index.js';\n");
console.log('built dist/herald.mjs, dist/herald.global.js, dist/herald.d.ts');
