/** A problem that stops `serve` from starting: one line per problem, printed without a stack (main.ts). */
export class StartupError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}
