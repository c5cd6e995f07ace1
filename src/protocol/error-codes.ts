/**
 * Between the error codes of refusals (`ErrorCode`, in errors.ts) and the typed errors they stand
 * for: the broker sends the code of the error it threw, the client raises the error of the code it got.
 */
import { AdminError, ConflictError, ErrorCode, InternalError, InvalidArgumentError, LimitReachedError, NotFoundError, PermissionDeniedError, UnknownMethodError } from '../errors.js'

const BY_CODE: Partial<Record<ErrorCode, typeof AdminError>> = {
  [ErrorCode.InvalidArgument]: InvalidArgumentError,
  [ErrorCode.UnknownMethod]: UnknownMethodError,
  [ErrorCode.NotFound]: NotFoundError,
  [ErrorCode.Conflict]: ConflictError,
  [ErrorCode.LimitReached]: LimitReachedError,
  [ErrorCode.Internal]: InternalError
}

/**
 * The typed error of an admin refusal with `code`: PermissionDeniedError, an AdminError subclass,
 * or a plain AdminError for an unknown or missing code.
 */
export function adminErrorOf (code: unknown, message: string): AdminError | PermissionDeniedError {
  if (code === ErrorCode.PermissionDenied) return new PermissionDeniedError(message)
  const Class = typeof code === 'number' ? BY_CODE[code as ErrorCode] : undefined
  return Class != null ? new Class(message) : new AdminError(message, { code: typeof code === 'number' ? code : ErrorCode.Unspecified })
}

/**
 * The code the broker sends for `err`: an AdminError's or PermissionDeniedError's own; InvalidArgument for a TypeError (how
 * the engine refuses bad names and settings); else Internal (a failure of the broker's).
 */
export function errorCodeOf (err: unknown): ErrorCode {
  if (err instanceof AdminError || err instanceof PermissionDeniedError) return err.code
  return err instanceof TypeError ? ErrorCode.InvalidArgument : ErrorCode.Internal
}
