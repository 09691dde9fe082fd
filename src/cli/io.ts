/** What a command may touch, handed in by main.ts so commands stay testable and process-free. */
export interface CommandIO {
  env: Readonly<Record<string, string | undefined>>;
  readStdin(): Promise<string>;
  out(text: string): void;
  err(text: string): void;
  /** Standard output is a terminal (colour it); false when piped or in tests. */
  outIsTerminal?: boolean;
}
