/**
 * Manifest streams for `inject`: YAML (multi-document) or JSON in, the same
 * documents out in order. Untouched documents are printed from their parsed
 * YAML document, so their key order, values and most comments survive.
 */
import { Document, parseAllDocuments } from 'yaml';

export interface ManifestDoc {
  /** 1-based position in the stream, for messages. */
  index: number;
  value: unknown;
  /** The parsed YAML document, to print untouched documents as written. */
  source?: Document;
}

export type ParseResult = { ok: true; docs: ManifestDoc[] } | { ok: false; error: string };

export function parseManifests(text: string): ParseResult {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { ok: true, docs: [{ index: 1, value: JSON.parse(text) as unknown }] };
    } catch {
      // Not one JSON value: perhaps YAML in flow style; let the YAML parser judge.
    }
  }
  const docs: ManifestDoc[] = [];
  let index = 0;
  for (const doc of parseAllDocuments(text, { prettyErrors: true })) {
    index += 1;
    const error = doc.errors[0];
    if (error) {
      const pos = error.linePos?.[0];
      const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
      return { ok: false, error: `document ${index}${where}: invalid YAML: ${(error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}` };
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue; // an empty document between separators
    docs.push({ index, value, source: doc as Document });
  }
  return { ok: true, docs };
}

export type OutputFormat = 'yaml' | 'json';

export interface OutputDoc {
  value: unknown;
  /** Set when the document is unchanged and came from YAML. */
  source?: Document;
}

export function formatManifests(docs: OutputDoc[], format: OutputFormat): string {
  if (format === 'json') {
    const values = docs.map((d) => d.value);
    const out = values.length === 1 ? values[0] : { apiVersion: 'v1', kind: 'List', items: values };
    return `${JSON.stringify(out, null, 2)}\n`;
  }
  return docs
    .map((d) => {
      const text = d.source ? d.source.toString({ lineWidth: 0 }) : new Document(d.value, { aliasDuplicateObjects: false }).toString({ lineWidth: 0 });
      // A document's own "---" marker is printed by the join.
      return text.replace(/^---\n/, '');
    })
    .join('---\n');
}
