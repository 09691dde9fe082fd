/** kube-apiserver drops admission warnings longer than 120 characters; keep them under. */
export const MAX_WARNING_LENGTH = 119;

export function warning(text: string): string {
  return text.length <= MAX_WARNING_LENGTH ? text : `${head(text, MAX_WARNING_LENGTH - 1)}…`;
}

/**
 * The first `max` UTF-16 units of `text`, one fewer rather than half a surrogate pair: a pod's own words
 * (a profile name, an override) may hold characters beyond U+FFFF, and half of one reaches the user as
 * U+FFFD (the API server decodes our answer with Go).
 */
export function head(text: string, max: number): string {
  const last = text.charCodeAt(max - 1);
  return text.slice(0, text.length > max && last >= 0xd800 && last <= 0xdbff ? max - 1 : max);
}
