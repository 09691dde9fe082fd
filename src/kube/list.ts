/** Paginated lists (`limit` and `continue`, API Concepts "Retrieving large results sets in chunks"): one page in memory at a time. */
import type { KubeClient } from './client.js';

export interface ListPage<T> {
  items?: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/** Calls `onPage` for every page of the list at `path`, in order; a 410 for an expired token is thrown to the caller. */
export async function forEachPage<T>(client: KubeClient, path: string, pageSize: number, onPage: (page: ListPage<T>) => void | Promise<void>): Promise<void> {
  let token: string | undefined;
  do {
    const query = new URLSearchParams({ limit: String(pageSize) });
    if (token) query.set('continue', token);
    const { body } = await client.request('GET', `${path}${path.includes('?') ? '&' : '?'}${query}`, { timeoutMs: 60_000 });
    const page = body as ListPage<T>;
    await onPage(page);
    token = page.metadata?.continue || undefined;
  } while (token);
}
