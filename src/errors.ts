/**
 * Typed errors: callers match on `name` (js-libp2p style) or `instanceof`. Names do not repeat
 * libp2p's (its TimeoutError, ProtocolError), so a caller can tell whose an error is.
 * This module imports nothing (frames and codec import it).
 */

/**
 * Why the broker refused an admin request (the Response's JSON `code`) or a subscription (the
 * Subscribed frame's code). A regular enum, not `const`: it is public (`err.code`), and JavaScript
 * callers need its values at run time. 0 is a refusal without a code (an older broker).
 */
export enum ErrorCode {
  Unspecified = 0,
  /** A parameter is missing, mistyped or not valid (a bad name, pattern or timing). */
  InvalidArgument = 1,
  /** No admin method of this name. */
  UnknownMethod = 2,
  /** What the request names is not there (queue, group), or went away (a deleted group). */
  NotFound = 3,
  /** The broker's state forbids it: the queue or group has consumers, the subId is taken. */
  Conflict = 4,
  /** Past one of the broker's limits (groups, bindings, subscriptions per stream, patterns). */
  LimitReached = 5,
  /** The broker failed (see its log). */
  Internal = 6,
  /** The broker's access control list does not let this peer do it. */
  PermissionDenied = 7
}

export class P2PMQError extends Error {
  static name = 'P2PMQError'
  /** @param options.cause the error that led to this one */
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = (this.constructor as typeof P2PMQError).name
  }
}

/** A frame that cannot be decoded, is of an unknown kind or is out of place. */
export class FrameError extends P2PMQError {
  static name = 'FrameError'
}

/** A frame or payload larger than the configured limit. */
export class MessageTooLargeError extends P2PMQError {
  static name = 'MessageTooLargeError'
}

/**
 * `send` (or an admin request) got no answer in time. The message may still be processed; its
 * late answer is dropped.
 */
export class AnswerTimeoutError extends P2PMQError {
  static name = 'AnswerTimeoutError'
}

/** The broker refused a message (full, too large, bad command). */
export class RejectedError extends P2PMQError {
  static name = 'RejectedError'
}

/** Every attempt at a message failed, or a consumer rejected it outright. `message` is the last error. */
export class MessageFailedError extends P2PMQError {
  static name = 'MessageFailedError'
  constructor (message: string, readonly consumer: string, readonly attempts: number, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/**
 * Thrown by a consumer handler to fail a message at once, without retries
 * (RabbitMQ's nack with requeue=false). Any other throw is retried on another attempt.
 */
export class RejectMessage extends P2PMQError {
  static name = 'RejectMessage'
}

/** Another running process holds this identity (its data directory is locked). */
export class IdentityInUseError extends P2PMQError {
  static name = 'IdentityInUseError'
}

/** A data directory that cannot be one: a file is in its place, or in the place of a parent. */
export class DataDirError extends P2PMQError {
  static name = 'DataDirError'
}

/** The p2pmq home's config file cannot be used: the message names the file and the key. */
export class HomeConfigError extends P2PMQError {
  static name = 'HomeConfigError'
}

/** The client or service was stopped while the operation was pending. */
export class ClosedError extends P2PMQError {
  static name = 'ClosedError'
}

/** A broker address that cannot be used: not a peer ID, not in the address book, no /p2p/ part. */
export class BrokerAddressError extends P2PMQError {
  static name = 'BrokerAddressError'
}

/** The broker refused a message as invalid (a bad command name, no id): `RejectCode.Invalid`. */
export class InvalidMessageError extends RejectedError {
  static name = 'InvalidMessageError'
}

/** Options of the errors that carry the broker's `ErrorCode`. */
export interface CodedErrorOptions {
  cause?: unknown
  /** Why, as the broker sent it; the class's own code when not given. */
  code?: ErrorCode
}

/**
 * The broker refused a subscription (a bad group name or pattern, too many patterns, subscriptions
 * or groups), or ended one (its group was deleted). `code` says which (`ErrorCode.Unspecified`
 * from a broker that sends none).
 */
export class SubscriptionError extends P2PMQError {
  static name = 'SubscriptionError'
  readonly code: ErrorCode
  constructor (message: string, options: CodedErrorOptions = {}) {
    super(message, options)
    this.code = options.code ?? ErrorCode.Unspecified
  }
}

/**
 * The broker refused an admin request, or a request's part; `code` says why. The broker throws
 * its subclasses, which the admin client raises again from the response's code; a code it does
 * not know (or none, from an older broker) is a plain AdminError.
 */
export class AdminError extends P2PMQError {
  static name = 'AdminError'
  /** The code of this class's refusals. */
  static code = ErrorCode.Unspecified
  readonly code: ErrorCode
  constructor (message: string, options: CodedErrorOptions = {}) {
    super(message, options)
    this.code = options.code ?? (this.constructor as typeof AdminError).code
  }
}

/** An admin request's parameters are not valid (a missing or mistyped field, a bad name or timing). */
export class InvalidArgumentError extends AdminError {
  static name = 'InvalidArgumentError'
  static code = ErrorCode.InvalidArgument
}

/** The broker has no admin method of this name (an older broker, or a typo). */
export class UnknownMethodError extends AdminError {
  static name = 'UnknownMethodError'
  static code = ErrorCode.UnknownMethod
}

/** What an admin request names is not there (no such queue, group or schedule). */
export class NotFoundError extends AdminError {
  static name = 'NotFoundError'
  static code = ErrorCode.NotFound
}

/** An admin request conflicts with the broker's state: the queue or group has consumers (use `force`). */
export class ConflictError extends AdminError {
  static name = 'ConflictError'
  static code = ErrorCode.Conflict
}

/** A request would take the broker past one of its limits (groups, bindings, patterns per subscription). */
export class LimitReachedError extends AdminError {
  static name = 'LimitReachedError'
  static code = ErrorCode.LimitReached
}

/** The broker failed on a request through no fault of its own parameters (see its log). */
export class InternalError extends AdminError {
  static name = 'InternalError'
  static code = ErrorCode.Internal
}

/**
 * The broker's access control list does not let this peer ID do it: an admin request, a publish
 * or send (its command), or a subscription (its pattern or group); or a permission withdrawn
 * ended a subscription. One class wherever it is refused; `code` is always `PermissionDenied`.
 */
export class PermissionDeniedError extends P2PMQError {
  static name = 'PermissionDeniedError'
  readonly code = ErrorCode.PermissionDenied
}
