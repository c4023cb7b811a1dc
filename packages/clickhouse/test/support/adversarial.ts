/**
 * Strings that try to break out of a string literal, a URL parameter or the
 * binder's own scanner: a fixed list of known tricks plus strings drawn with a
 * seeded generator (mulberry32, seed below) from an alphabet of the characters
 * that matter. Deterministic: the same table on every run and every machine
 * (fast-check is not a dependency here; a failing entry is reproducible as is).
 */

const KNOWN = [
  '',
  "'",
  "''",
  "\\'",
  '\\',
  '\\\\',
  "\\''",
  'a\\',
  "'; DROP TABLE x; --",
  "' OR 1=1 --",
  "'); DROP TABLE x; --",
  '{x:String}',
  "{s:String}'",
  '{tenant_id:UUID}',
  "' || {x:String} || '",
  '*/ SELECT 1 /*',
  '-- comment',
  '# comment',
  '$$ heredoc $$',
  'line1\nline2',
  'cr\rlf\r\n',
  'tab\there',
  '\x00',
  'nul\x00inside',
  '\x01\x02\x1b[31m\x7f',
  '\\x41 is not A',
  '\\n is not a newline',
  '\\0',
  '"double" `back`',
  'é ü ß ñ',
  '中文字符',
  '😀 emoji 👩‍👩‍👧',
  '\u2028\u2029',
  '\uFEFFbom',
  'a%20b&c=d+e?f#g',
  '%00%27',
  'FORMAT TabSeparated',
  '\nFORMAT JSON',
  ' '.repeat(3),
  'x'.repeat(2_000) + "'",
];

const ALPHABET = [
  "'",
  '\\',
  '"',
  '`',
  '{',
  '}',
  ':',
  ';',
  '-',
  '/',
  '*',
  '#',
  '$',
  '%',
  '&',
  '=',
  '+',
  '?',
  '\n',
  '\r',
  '\t',
  '\x00',
  '\x07',
  '\x1f',
  '\x7f',
  ' ',
  'a',
  'Z',
  '0',
  'é',
  '中',
  '😀',
  'x:String',
  'DROP',
];

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export const ADVERSARIAL_SEED = 0x5eed_c0de;

function generated(count: number): string[] {
  const random = mulberry32(ADVERSARIAL_SEED);
  const out: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const length = 1 + Math.floor(random() * 24);
    let value = '';
    for (let j = 0; j < length; j += 1) value += ALPHABET[Math.floor(random() * ALPHABET.length)];
    out.push(value);
  }
  return out;
}

/** The table: the known tricks, then 160 seeded random strings. */
export const ADVERSARIAL_STRINGS: readonly string[] = [...KNOWN, ...generated(160)];
