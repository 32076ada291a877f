// Small assertion and RFC 6750 challenge helpers for the interop scripts.

/** Throws with `message` unless `cond` holds. */
export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** Prints one checked fact; throws if it does not hold. */
export function check(what, ok) {
  console.log(`${ok ? '  ok ' : '  NOT'} ${what}`);
  if (!ok) throw new Error(`check failed: ${what}`);
}

/**
 * Parses one `WWW-Authenticate` challenge (RFC 9110 §11.6.1 / RFC 6750 §3):
 * `Bearer k="v", k2=v2` → { scheme: 'bearer', params: { k: 'v', k2: 'v2' } }.
 * Returns { scheme: null, params: {} } for a missing header.
 */
export function parseChallenge(header) {
  if (!header) return { scheme: null, params: {} };
  const m = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*(.*)$/s.exec(header);
  const params = {};
  const re = /([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?\s*/gy;
  re.lastIndex = 0;
  const rest = m[2];
  let p;
  while ((p = re.exec(rest)) !== null) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  return { scheme: m[1].toLowerCase(), params };
}

/** The `scope` of a form-encoded token request body. */
export function tokenScopeFromForm(body) {
  return new URLSearchParams(body ?? '').get('scope');
}
