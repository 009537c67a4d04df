import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { sdkRoot } from '../support/herald.mjs';

test('dist/herald.d.ts types an app written against the issue\'s API in strict TypeScript', () => {
  const tsc = join(sdkRoot, 'node_modules/typescript/bin/tsc');
  const args = ['--noEmit', '--strict', '--exactOptionalPropertyTypes', '--target', 'ES2020', '--module', 'NodeNext',
    '--moduleResolution', 'NodeNext', '--lib', 'ES2020,DOM', join(sdkRoot, 'test/types/consumer.ts')];
  try {
    execFileSync(process.execPath, [tsc, ...args], { encoding: 'utf8' });
  } catch (e) {
    assert.fail(`tsc found errors:\n${e.stdout}${e.stderr}`);
  }
});
