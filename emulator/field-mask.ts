/**
 * Partial responses: the `fields` system parameter of Google's REST APIs (`tasks(name,lastAttempt),
 * nextPageToken`, `httpRequest/url`). https://cloud.google.com/apis/docs/system-parameters
 */

/** A parsed mask: each selected field, with the mask of its sub-fields (undefined = the whole value). */
export type FieldMask = Map<string, FieldMask | undefined>;

/** Parses a `fields` value; throws on unbalanced parentheses or an empty field. */
export function parseFieldMask(text: string): FieldMask {
  let at = 0;
  // One element: `name`, `name/element` or `name(list)`.
  const element = (): [string, FieldMask | undefined] => {
    const start = at;
    while (at < text.length && !',()/'.includes(text[at]!)) at++;
    const name = text.slice(start, at).trim();
    if (!name) throw new Error(`empty field at ${start}`);
    if (text[at] === '/') {
      at++;
      return [name, new Map([element()])];
    }
    if (text[at] !== '(') return [name, undefined];
    at++;
    const sub = list();
    if (text[at] !== ')') throw new Error(`missing ) at ${at}`);
    at++;
    return [name, sub];
  };
  const list = (): FieldMask => {
    const mask: FieldMask = new Map();
    for (;;) {
      const [name, sub] = element();
      mask.set(name, merge(mask.get(name), sub, mask.has(name)));
      if (text[at] !== ',') return mask;
      at++;
    }
  };
  const mask = list();
  if (at !== text.length) throw new Error(`unexpected "${text[at]}" at ${at}`);
  return mask;
}

function merge(a: FieldMask | undefined, b: FieldMask | undefined, had: boolean): FieldMask | undefined {
  if (!had) return b;
  if (a === undefined || b === undefined) return undefined; // one asks for the whole value
  const merged: FieldMask = new Map(a);
  for (const [key, sub] of b) merged.set(key, merge(merged.get(key), sub, merged.has(key)));
  return merged;
}

/** Keeps only the masked fields of a JSON value; arrays apply the mask to each element. */
export function applyFieldMask(value: unknown, mask: FieldMask): unknown {
  if (Array.isArray(value)) return value.map((item) => applyFieldMask(item, mask));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, sub] of mask) {
    const field = (value as Record<string, unknown>)[key];
    if (field !== undefined) out[key] = sub ? applyFieldMask(field, sub) : field;
  }
  return out;
}
