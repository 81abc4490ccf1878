/**
 * The CLI's flags are stated three times on purpose, for three readers: the parser (scripts/cli/args.ts),
 * the help text (scripts/cli/help.ts) and docs/cli.md "Flags". This test keeps the three equal, command by
 * command, so none of them can drift.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMAND_FLAGS } from '../../scripts/cli/args.js';
import { HELP } from '../../scripts/cli/help.js';

type Command = keyof typeof COMMAND_FLAGS;
const COMMANDS = Object.keys(COMMAND_FLAGS) as Command[];

/** Every flag a text names: `--long-name`, and `-h`. */
function flagsIn(text: string): Set<string> {
  return new Set([...text.matchAll(/(?<![\w-])(--[a-z][a-z-]*|-h)(?![\w-])/g)].map((m) => m[1]!));
}

function parserFlags(command: Command): Set<string> {
  const flags = new Set<string>();
  for (const [name, option] of Object.entries(COMMAND_FLAGS[command] ?? {})) {
    flags.add(`--${name}`);
    if (option.short) flags.add(`-${option.short}`);
  }
  return flags;
}

/** The flags of one command in docs/cli.md's "Flags" table: its rows whose second column names the command. */
function docsFlags(command: Command): Set<string> {
  const page = readFileSync('docs/cli.md', 'utf8');
  const section = page.split(/^## /m).find((s) => s.startsWith('Flags\n'));
  if (!section) throw new Error('docs/cli.md has no "## Flags" section');
  const flags = new Set<string>();
  for (const row of section.split('\n').filter((line) => line.startsWith('| `'))) {
    const [flagCell = '', commandsCell = ''] = row.split(/(?<!\\)\|/).slice(1, 3);
    const commands =
      commandsCell.trim() === 'every command' ? COMMANDS : commandsCell.split(',').map((c) => c.trim());
    if (commands.includes(command)) for (const flag of flagsIn(flagCell)) flags.add(flag);
  }
  return flags;
}

const sorted = (set: Set<string>): string[] => [...set].sort();

describe('docs/cli.md, --help and the parser name the same flags', () => {
  for (const command of COMMANDS) {
    it(`${command}: the help names exactly the flags the parser takes`, () => {
      expect(sorted(flagsIn(HELP[command]))).toEqual(sorted(parserFlags(command)));
    });
    it(`${command}: docs/cli.md "Flags" names exactly the flags the parser takes`, () => {
      expect(sorted(docsFlags(command))).toEqual(sorted(parserFlags(command)));
    });
  }

  it('would notice a flag missing from the page', () => {
    const page = readFileSync('docs/cli.md', 'utf8');
    expect(page).toContain('| `--max-list-calls N` |');
    expect(docsFlags('queues').has('--max-list-calls')).toBe(true);
    expect(docsFlags('status').has('--max-list-calls')).toBe(false);
  });
});
