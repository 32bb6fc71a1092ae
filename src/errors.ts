/**
 * Errors with a stable code. Clients and tests match on `code`; `status` is the HTTP
 * status the API answers with. Domain code throws these; the HTTP layer presents them.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown[] = [],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class NotFoundError extends AppError {
  constructor(what = 'resource') {
    super(404, 'not_found', `${what} not found`);
  }
}

export class ConflictError extends AppError {
  constructor(code: string, message: string) {
    super(409, code, message);
  }
}

export interface ValidationDetail {
  path: string;
  message: string;
  keyword: string;
}

export class ValidationError extends AppError {
  constructor(details: ValidationDetail[]) {
    super(422, 'validation_failed', details.map((d) => `${d.path || '(body)'}: ${d.message}`).join('; '), details);
  }
}

export class UnauthorizedError extends AppError {
  constructor(code = 'unauthorized', message = 'authentication required') {
    super(401, code, message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message = 'forbidden') {
    super(403, 'forbidden', message);
  }
}

export class ServiceUnavailableError extends AppError {
  constructor(code: string, message: string) {
    super(503, code, message, [], { 'Retry-After': '5' });
  }
}
