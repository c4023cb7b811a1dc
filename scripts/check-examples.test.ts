// Every README example is true (see check-examples.ts): one test per TypeScript block of a
// package README, named by package and README line, one per README for its markers and links,
// and a fixture README with broken blocks that the same run must report where they break.
// `pnpm check:examples` runs this with a TAP report in reports/check-examples.tap.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { after, before, describe, test } from 'node:test';
import {
  REPO_BLOB,
  ROOT,
  blockFailures,
  blockName,
  checkExamples,
  checkLinks,
  listPackages,
  listReadmes,
  parseExamples,
  parseTscOutput,
  type BlockResult,
  type CheckResult,
  type Readme,
} from './check-examples.ts';
import { readJson } from './lib/workspace.ts';

/** The whole run's budget: about 30 s alone on 2 cores, more under a loaded `pnpm check`. */
const RUN_LIMIT_MS = 300_000;

// ---------------------------------------------------------------------------
// Markers and fences

test('finds ts and typescript blocks, with their fence lines and markers', () => {
  const text = [
    '# x', //                                     1
    '```sh', //                                   2
    'pnpm add x', //                              3
    '```', //                                     4
    '```ts', //                                   5
    'const a = 1;', //                            6
    '```', //                                     7
    '<!-- example: run -->', //                   8
    '', //                                        9
    '```typescript', //                           10
    'const b = 2;', //                            11
    'const c = 3;', //                            12
    '```', //                                     13
    '<!-- example: skip (needs the app from above) -->', // 14
    '~~~TS title="x.ts"', //                      15
    'app.get();', //                              16
    '~~~', //                                     17
  ].join('\n');
  assert.deepEqual(parseExamples(text), {
    blocks: [
      { line: 5, code: 'const a = 1;', mode: 'compile' },
      { line: 10, code: 'const b = 2;\nconst c = 3;', mode: 'run' },
      { line: 15, code: 'app.get();', mode: 'skip', reason: 'needs the app from above' },
    ],
    problems: [],
  });
});

test('a skip needs a reason; unknown and stray markers are reported', () => {
  const text = [
    '<!-- example: skip -->', //                  1
    '```ts', //                                   2
    'x;', //                                      3
    '```', //                                     4
    '<!-- example: skip () -->', //               5
    '```ts', //                                   6
    'y;', //                                      7
    '```', //                                     8
    '<!-- example: runn -->', //                  9
    '```ts', //                                   10
    'z;', //                                      11
    '```', //                                     12
    '<!-- example: run -->', //                   13
    '```sh', //                                   14
    'ls', //                                      15
    '```', //                                     16
    '<!-- example: run -->', //                   17
    'Some prose.', //                             18
  ].join('\n');
  const { blocks, problems } = parseExamples(text);
  assert.deepEqual(
    blocks.map((block) => [block.line, block.mode]),
    [
      [2, 'skip'],
      [6, 'skip'],
      [10, 'compile'],
    ],
  );
  assert.deepEqual(
    problems.map((problem) => problem.line),
    [1, 5, 9, 13, 17],
  );
  assert.match(problems[0]?.message ?? '', /needs a reason/);
  assert.match(problems[2]?.message ?? '', /unknown example marker "runn"/);
  assert.match(problems[3]?.message ?? '', /before a `sh` block/);
  assert.match(problems[4]?.message ?? '', /not followed by a code block/);
});

test('a fence inside a longer fence is text, not a block', () => {
  const text = ['````md', '<!-- example: run -->', '```ts', 'nope;', '```', '````'].join('\n');
  assert.deepEqual(parseExamples(text), { blocks: [], problems: [] });
});

test('parses tsc diagnostics, continuation lines included', () => {
  const output = [
    "examples/db/readme-L33.ts(14,3): error TS2304: Cannot find name 'sql'.",
    "examples/auth/readme-L30.ts(15,37): error TS2322: Type 'A' is not assignable to type 'B'.",
    "  Type 'C' is not assignable to type 'D'.",
    'error TS5083: Cannot read file tsconfig.json.',
  ].join('\n');
  assert.deepEqual(parseTscOutput(output), [
    {
      file: 'examples/db/readme-L33.ts',
      line: 14,
      column: 3,
      code: 'TS2304',
      message: "Cannot find name 'sql'.",
    },
    {
      file: 'examples/auth/readme-L30.ts',
      line: 15,
      column: 37,
      code: 'TS2322',
      message: "Type 'A' is not assignable to type 'B'.\n  Type 'C' is not assignable to type 'D'.",
    },
    { line: 0, column: 0, code: 'TS5083', message: 'Cannot read file tsconfig.json.' },
  ]);
});

// ---------------------------------------------------------------------------
// Links

describe('links as npm shows them', () => {
  const where = {
    readmePath: join(ROOT, 'packages/config/README.md'),
    packageDir: join(ROOT, 'packages/config'),
  };
  const problems = (text: string): string[] =>
    checkLinks(text, where).map((p) => `${p.line}: ${p.message}`);

  test('a relative link out of the package is refused, with the absolute link to use', () => {
    assert.deepEqual(
      problems('See [the record](../../docs/decisions/002-tenant-isolation-by-rls.md).'),
      [
        `1: relative link ../../docs/decisions/002-tenant-isolation-by-rls.md leaves the package, so it is broken on npm: use ${REPO_BLOB}docs/decisions/002-tenant-isolation-by-rls.md`,
      ],
    );
  });

  test('relative links inside the package must name a file that exists', () => {
    assert.deepEqual(problems('[env](./ENVIRONMENT.md) [src](src/index.ts) [gone](./GONE.md)'), [
      '1: relative link ./GONE.md: no such file',
    ]);
  });

  test('links into this repository on GitHub must name something that exists', () => {
    assert.deepEqual(
      problems(
        `[ok](${REPO_BLOB}docs/decisions/001-log-destination.md) [bad](${REPO_BLOB}docs/nope.md)`,
      ),
      [`1: link to ${REPO_BLOB}docs/nope.md: the repository has no file docs/nope.md`],
    );
  });

  test('anchors must name a heading; code, fences and other sites are left alone', () => {
    const text = [
      '## Options',
      '### The guarantee (exactly once)',
      '[a](#options) [b](#the-guarantee-exactly-once) [c](#missing)',
      '`[not a link](../../x)` [site](https://example.com/a/../b)',
      '```md',
      '[inside a fence](../../x)',
      '```',
    ].join('\n');
    assert.deepEqual(problems(text), ['3: link to #missing: no heading has that anchor']);
  });
});

// ---------------------------------------------------------------------------
// The fixture: blocks that must fail, in the same run as the real READMEs

const FIXTURE_LINES = [
  '# @flowforge/fixture', //                                               1
  '', //                                                                   2
  '```ts', //                                                              3
  "import { settings } from '@flowforge/config';", //                      4
  '', //                                                                   5
  'export const port: string = settings.app.port;', //                     6
  '```', //                                                                7
  '', //                                                                   8
  '```ts', //                                                              9
  'const metrics = createMetrics();', //                                   10
  '```', //                                                                11
  '', //                                                                   12
  '<!-- example: run -->', //                                              13
  '', //                                                                   14
  '```ts', //                                                              15
  "import { loadSettings } from '@flowforge/config';", //                  16
  '', //                                                                   17
  "loadSettings({ APP_ENV: 'nowhere' }); // throws ConfigError", //        18
  '```', //                                                                19
  '', //                                                                   20
  '<!-- example: run -->', //                                              21
  '', //                                                                   22
  '```ts', //                                                              23
  "import { loadSettings } from '@flowforge/config';", //                  24
  '', //                                                                   25
  "console.log(loadSettings({ APP_ENV: 'test' }).app.env);", //            26
  '```', //                                                                27
  '', //                                                                   28
  '<!-- example: skip (does not compile on purpose: proves skips are not compiled) -->', // 29
  '', //                                                                   30
  '```ts', //                                                              31
  'this is not TypeScript', //                                             32
  '```', //                                                                33
  '', //                                                                   34
  '<!-- example: skip -->', //                                             35
  '', //                                                                   36
  '```ts', //                                                              37
  'const fine = 1;', //                                                    38
  '```', //                                                                39
  '', //                                                                   40
  '[out of the package](../../README.md)', //                              41
  '', //                                                                   42
];

const FIXTURE: Readme = {
  name: '@flowforge/fixture',
  path: join(ROOT, 'packages', 'fixture', 'README.md'),
  shown: 'packages/fixture/README.md',
  packageDir: join(ROOT, 'packages', 'fixture'),
  text: FIXTURE_LINES.join('\n'),
};

// ---------------------------------------------------------------------------
// The run: every README and the fixture, one tsc per module mode

const readmes = listReadmes();
const parsed = readmes.map((readme) => {
  const text = readFileSync(readme.path, 'utf8');
  const { blocks, problems } = parseExamples(text);
  const links = checkLinks(text, { readmePath: readme.path, packageDir: readme.packageDir });
  return { readme, blocks, problems: [...problems, ...links].sort((a, b) => a.line - b.line) };
});

test('every published package has a README with at least one example', () => {
  const withExamples = new Set(
    parsed.filter(({ blocks }) => blocks.length > 0).map(({ readme }) => readme.name),
  );
  assert.deepEqual(
    listPackages()
      .map((pkg) => pkg.name)
      .filter((name) => !withExamples.has(name)),
    [],
  );
});

describe(
  'README examples compile against the built packages and run',
  { timeout: RUN_LIMIT_MS },
  () => {
    let result: CheckResult | undefined;
    const watchdog = setTimeout(() => {
      console.error(`check-examples: over ${RUN_LIMIT_MS} ms, giving up`);
      process.exit(1);
    }, RUN_LIMIT_MS);
    watchdog.unref();

    before(async () => {
      result = await checkExamples({ readmes: [...readmes, FIXTURE] });
    });
    after(() => clearTimeout(watchdog));

    const resultOf = (shown: string, line: number): BlockResult => {
      assert.ok(result, 'the check did not run');
      const found = result.blocks.find((b) => b.readme.shown === shown && b.block.line === line);
      assert.ok(found, `${shown}:${line} was not checked`);
      return found;
    };

    test("the packages' declaration files compile in the strict consumer (skipLibCheck off)", (t) => {
      assert.ok(result, 'the check did not run');
      assert.deepEqual(result.library, []);
      t.diagnostic(`whole run (fixture included): ${result.seconds.toFixed(1)} s`);
    });

    for (const { readme, blocks, problems } of parsed) {
      describe(readme.name, () => {
        test(`${readme.shown}: example markers and links`, () => {
          assert.deepEqual(
            problems.map((problem) => `${readme.shown}:${problem.line}: ${problem.message}`),
            [],
          );
        });
        for (const block of blocks) {
          const name = blockName(readme, block);
          if (block.mode === 'skip') {
            test(name, { skip: block.reason || 'no reason given' }, () => {});
            continue;
          }
          test(name, () => {
            const failures = blockFailures(resultOf(readme.shown, block.line));
            assert.ok(failures.length === 0, `\n${failures.join('\n')}`);
          });
        }
      });
    }

    describe('the check fails where an example is broken (fixture README)', () => {
      const shown = FIXTURE.shown;

      test('a type error is reported at its README line and column, in both modes', () => {
        const failures = blockFailures(resultOf(shown, 3));
        assert.equal(failures.length, 2, failures.join('\n'));
        for (const mode of ['nodenext', 'bundler']) {
          assert.ok(
            failures.some((line) =>
              line.startsWith(`[${mode}] ${shown}:6:14: TS2322 Type 'number' is not assignable`),
            ),
            failures.join('\n'),
          );
        }
      });

      test('a name the block does not import is reported', () => {
        const failures = blockFailures(resultOf(shown, 9));
        assert.ok(
          failures.some((line) =>
            line.includes(`${shown}:10:17: TS2304 Cannot find name 'createMetrics'`),
          ),
          failures.join('\n'),
        );
      });

      test('a runnable block that throws fails with its output', () => {
        const block = resultOf(shown, 15);
        assert.deepEqual(block.diagnostics, { nodenext: [], bundler: [] });
        assert.equal(block.run?.ok, false);
        assert.match(block.run?.output ?? '', /exited 1[\s\S]*CONFIG_INVALID/);
      });

      test('a runnable block that works passes, and ran', () => {
        const block = resultOf(shown, 23);
        assert.deepEqual(blockFailures(block), []);
        assert.equal(block.run?.ok, true);
        assert.match(block.run?.output ?? '', /^test$/m);
      });

      test('a skipped block is neither compiled nor run; a skip without a reason is reported', () => {
        assert.ok(result, 'the check did not run');
        assert.equal(
          result.blocks.some((b) => b.readme.shown === shown && b.block.line === 31),
          false,
        );
        const problems = result.parsed.find((p) => p.readme.shown === shown)?.problems ?? [];
        assert.deepEqual(
          problems.map((problem) => problem.line),
          [35, 41],
        );
        assert.match(problems[0]?.message ?? '', /needs a reason/);
        assert.match(problems[1]?.message ?? '', /leaves the package/);
      });
    });
  },
);

// ---------------------------------------------------------------------------
// Wiring: CI runs this after every package is built, and counts it

test('turbo builds every package before this check, and `pnpm check` runs it', () => {
  const turbo = readJson<{ tasks: Record<string, { dependsOn?: string[] }> }>(
    join(ROOT, 'turbo.json'),
  );
  const task = turbo.tasks['//#check:examples'];
  assert.ok(task, 'turbo.json has no //#check:examples task');
  for (const pkg of listPackages())
    assert.ok(task.dependsOn?.includes(`${pkg.name}#build`), pkg.name);
  const { scripts } = readJson<{ scripts: Record<string, string> }>(join(ROOT, 'package.json'));
  assert.match(scripts['check'] ?? '', /(?:^|\s)\/\/#check:examples(?:\s|$)/);
  assert.match(scripts['check:examples'] ?? '', /reports\/check-examples\.tap/);
  assert.match(readFileSync(join(ROOT, 'scripts/test-summary.ts'), 'utf8'), /'check-examples'/);
});
