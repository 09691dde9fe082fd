/** kube-apiserver drops admission warnings longer than 120 characters; keep them under. */
export const MAX_WARNING_LENGTH = 119;

export function warning(text: string): string {
  return text.length <= MAX_WARNING_LENGTH ? text : `${text.slice(0, MAX_WARNING_LENGTH - 1)}…`;
}
