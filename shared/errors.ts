/** A field-level validation problem: a dotted path into the submitted document and what is wrong there. */
export interface FieldError {
  path: string;
  message: string;
}

/** The RFC 9457 problem document every error response carries. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
  instance?: string;
}

const TYPE_BASE = 'https://flotilla.dev/problems/';

/** Base of every error the API reports: a stable code, an HTTP status, and structured field errors. */
export class FlotillaError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly errors: FieldError[] = [],
  ) {
    super(message);
    this.name = 'FlotillaError';
  }

  /** Renders this error as a problem+json document. */
  toProblem(): Problem {
    const p: Problem = { type: TYPE_BASE + this.code, title: titleFor(this.code), status: this.status, detail: this.message };
    if (this.errors.length > 0) p.errors = this.errors;
    return p;
  }
}

function titleFor(code: string): string {
  return code.replace(/-/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

/** 400/422: the input does not validate; `errors` names each field path. */
export const invalid = (message: string, errors: FieldError[] = []) => new FlotillaError('invalid', 422, message, errors);
/** 400: the body could not be parsed at all. */
export const malformed = (message: string) => new FlotillaError('malformed', 400, message);
/** 401: no or bad credentials. */
export const unauthenticated = (message = 'missing or invalid credentials') => new FlotillaError('unauthenticated', 401, message);
/** 403: valid credentials without the right. */
export const forbidden = (message: string) => new FlotillaError('forbidden', 403, message);
/** 404. */
export const notFound = (message: string) => new FlotillaError('not-found', 404, message);
/** 409: the object exists or changed under the caller. */
export const conflict = (message: string) => new FlotillaError('conflict', 409, message);
/** 413. */
export const tooLarge = (message: string) => new FlotillaError('too-large', 413, message);
/** 415. */
export const unsupportedMedia = (message: string) => new FlotillaError('unsupported-media-type', 415, message);

/** Type guard for FlotillaError, also across module copies. */
export function isFlotillaError(e: unknown): e is FlotillaError {
  return e instanceof FlotillaError || (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'FlotillaError');
}

/** Type guard for a problem document received over HTTP. */
export function isProblem(x: unknown): x is Problem {
  return typeof x === 'object' && x !== null && typeof (x as Problem).status === 'number' && typeof (x as Problem).type === 'string';
}

/** One readable line for a problem, naming the first field paths: what the CLI prints. */
export function problemLine(p: Problem): string {
  const fields = (p.errors ?? []).slice(0, 3).map((e) => `${e.path}: ${e.message}`);
  return fields.length > 0 ? `${p.detail} (${fields.join('; ')})` : p.detail;
}

/** 410: what was asked for is no longer kept (a watch from a pruned resourceVersion). */
export const gone = (message: string) => new FlotillaError('gone', 410, message);
