/**
 * The repository stands on its own: every link in the docs resolves (file and heading), every
 * `docs/<page>.md "<Section>"` that code, tests or docs cite names a section that exists, nothing points to
 * a contract outside the repository, and docs/configuration.md lists exactly the variables the code reads.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../shared/platform/config.js';

const ROOT = process.cwd();
const CODE_DIRS = ['shared', 'functions', 'scripts', 'emulator', 'bench', 'bin', 'test', '.ci'];
const CODE_FILES = ['deploy.sh', 'eslint.config.js', 'package.json', 'vitest.config.ts'];

function filesUnder(dir: string, suffixes: readonly string[]): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return entry === 'node_modules' ? [] : filesUnder(path, suffixes);
    return suffixes.some((s) => entry.endsWith(s)) ? [path] : [];
  });
}

const MARKDOWN = ['README.md', ...filesUnder('docs', ['.md']), ...filesUnder('shared', ['.md'])];
const CODE = [
  ...CODE_DIRS.flatMap((dir) => filesUnder(dir, ['.ts', '.js', '.sh', '.json', '.md', ''])),
  ...CODE_FILES,
].filter((f) => !f.startsWith('test/fixtures/'));

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slugOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** The headings of a Markdown file, outside code blocks. */
function headingsOf(file: string): string[] {
  let inCode = false;
  const headings: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('```')) inCode = !inCode;
    else if (!inCode && /^#{1,6} /.test(line)) headings.push(line.replace(/^#+ /, '').trim());
  }
  return headings;
}

/** A file's text with Markdown code blocks blanked, so example links in them are not checked. */
function proseOf(file: string): string {
  return readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
}

describe('links in the docs', () => {
  const links = MARKDOWN.flatMap((file) =>
    [...proseOf(file).matchAll(/\]\(([^)\s]+)\)/g)]
      .map((m) => m[1]!)
      .filter((target) => !/^[a-z]+:/.test(target))
      .map((target) => ({ file, target })),
  );

  it('finds links to check', () => {
    expect(links.length).toBeGreaterThan(50);
  });

  it.each(links.map((l) => [`${l.file} -> ${l.target}`, l] as const))(
    '%s resolves',
    (_, { file, target }) => {
      const [path = '', anchor] = target.split('#');
      const resolved = path === '' ? file : normalize(join(dirname(file), path));
      expect(relative(ROOT, join(ROOT, resolved)).startsWith('..'), `${target} leaves the repository`).toBe(
        false,
      );
      expect(existsSync(resolved), `${resolved} exists`).toBe(true);
      if (anchor !== undefined) expect(headingsOf(resolved).map(slugOf)).toContain(anchor);
    },
  );
});

describe('citations of the docs', () => {
  const citations = CODE.concat(MARKDOWN).flatMap((file) => {
    // A comment may wrap a section's name over lines: join them before reading.
    const text = readFileSync(file, 'utf8').replace(/\n\s*(?:\*|\/\/|#)?\s*/g, ' ');
    return [...text.matchAll(/docs\/([a-z-]+\.md)(?:\)|`)? "([^"]+)"/g)].map((m) => ({
      file,
      page: `docs/${m[1]!}`,
      section: m[2]!,
    }));
  });

  it('finds citations to check', () => {
    expect(citations.length).toBeGreaterThan(30);
  });

  it.each(citations.map((c) => [`${c.file}: ${c.page} "${c.section}"`, c] as const))(
    '%s names a section that exists',
    (_, { page, section }) => {
      expect(existsSync(page), `${page} exists`).toBe(true);
      expect(headingsOf(page).map((h) => h.toLowerCase())).toContain(section.toLowerCase());
    },
  );

  it('every docs/ page that code or tests name exists', () => {
    const pages = new Set(
      CODE.flatMap((file) =>
        [...readFileSync(file, 'utf8').matchAll(/docs\/([a-z-]+\.md)/g)].map((m) => m[1]!),
      ),
    );
    expect(pages.size).toBeGreaterThan(5);
    for (const page of pages) expect(existsSync(join('docs', page)), `docs/${page}`).toBe(true);
  });

  it('nothing cites the starting contract or files outside the repository', () => {
    for (const file of CODE.concat(MARKDOWN)) {
      if (file === 'test/docs/links.test.ts') continue;
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.toMatch(/SPEC [0-9]|SPEC section|SPEC\.md|perf-anchors|\.\.\/shared\/reference/);
    }
  });
});

describe('docs/configuration.md', () => {
  it('lists exactly the variables the configuration reads', () => {
    const rows = readFileSync('docs/configuration.md', 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => /^\| `([A-Z_]+)`/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined);
    expect([...rows].sort()).toEqual([...CONFIG_KEYS].sort());
  });
});
