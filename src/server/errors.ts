/** Every error the HTTP edge answers with: one catalogue, documented in the README. */
export const HTTP_ERRORS = {
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Content-Type must be application/json' },
  BODY_TOO_LARGE: { status: 413, message: 'request body exceeds 3 MiB' },
  INVALID_JSON: { status: 400, message: 'request body is not valid JSON' },
  INVALID_REVIEW: { status: 400, message: 'not an AdmissionReview' },
  NOT_FOUND: { status: 404, message: 'no such route' },
  METHOD_NOT_ALLOWED: { status: 405, message: '/mutate takes POST' },
  INTERNAL: { status: 500, message: 'internal error (logged); not caused by the request' },
} as const;

export type HttpErrorCode = keyof typeof HTTP_ERRORS;

export interface HttpErrorBody {
  error: string;
  code: HttpErrorCode;
}

export function httpError(code: HttpErrorCode, detail?: string): { status: number; body: HttpErrorBody } {
  const { status, message } = HTTP_ERRORS[code];
  return { status, body: { error: detail ? `${message}: ${detail}` : message, code } };
}
