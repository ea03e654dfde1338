// Errors as an OpenAI-compatible server reports them: an HTTP status and the body
// {"error": {"message", "type", "param", "code"}} that OpenAI's SDKs parse and show.

export type ApiErrorType = 'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'server_error';

export interface ApiErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: ApiErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (Allow, Retry-After, WWW-Authenticate). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 for a field the request got wrong; `param` names it as OpenAI does (`max_tokens`, `messages.0.role`). */
export function invalidParam(param: string | null, message: string, code: string | null = 'invalid_value'): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, code);
}

/** 400 for a feature this server does not implement, naming the field. */
export function unsupported(param: string, message: string): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, 'unsupported_parameter');
}

/** What a client sees for a bug: no message text, no stack (the detail goes to the server log). */
export function internalError(requestId: string): ApiError {
  return new ApiError(
    500,
    `The server had an error while processing your request (request id ${requestId}; the server log has the details).`,
    'server_error',
    null,
    'internal_error',
  );
}
