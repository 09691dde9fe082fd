/**
 * Manifest streams for `inject`: YAML (multi-document) or JSON in, the same
 * documents out in order. Untouched YAML documents are printed as their
 * source text, byte for byte (comments, quoting, flow style, `010` that YAML
 * 1.1 reads as octal); injected ones are printed anew.
 */
import { Document, parseAllDocuments } from 'yaml';

export interface ManifestDoc {
  /** 1-based position in the stream, for messages. */
  index: number;
  value: unknown;
  /** The document's own text in a YAML stream, to print it as written when untouched. */
  source?: string;
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
  let from = 0;
  for (const doc of parseAllDocuments(text, { prettyErrors: true })) {
    index += 1;
    // From the end of the one before: comments above a document belong to it.
    const source = text.slice(from, doc.range[2]);
    from = doc.range[2];
    const error = doc.errors[0];
    if (error) {
      const pos = error.linePos?.[0];
      const where = pos ? ` (line ${pos.line}, column ${pos.col})` : '';
      return { ok: false, error: `document ${index}${where}: invalid YAML: ${(error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}` };
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue; // an empty document between separators
    docs.push({ index, value, source: source.replace(/^---[ \t]*\n/, '') });
  }
  return { ok: true, docs };
}

export type OutputFormat = 'yaml' | 'json';

export interface OutputDoc {
  value: unknown;
  /** Set when the document is unchanged and came from YAML: its text. */
  source?: string;
}

export function formatManifests(docs: OutputDoc[], format: OutputFormat): string {
  if (format === 'json') {
    const values = docs.map((d) => d.value);
    const out = values.length === 1 ? values[0] : { apiVersion: 'v1', kind: 'List', items: values };
    return `${JSON.stringify(out, null, 2)}\n`;
  }
  return docs
    .map((d) => {
      if (d.source !== undefined) return d.source.endsWith('\n') ? d.source : `${d.source}\n`;
      // A document's own "---" marker is printed by the join.
      return new Document(d.value, { aliasDuplicateObjects: false }).toString({ lineWidth: 0 }).replace(/^---\n/, '');
    })
    .join('---\n');
}
