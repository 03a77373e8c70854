// Errors a client causes are values that carry their HTTP status; the connection loop turns
// one into a response in a single place and closes the connection.

/** A protocol error caused by the client: its status and a short reason safe to send. */
export class HttpError extends Error {
  readonly status: number;

  constructor(status: number, reason: string) {
    super(reason);
    this.name = "HttpError";
    this.status = status;
  }
}

/** An error in the application's use of the contract (bad status, header, body). */
export class AppError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppError";
  }
}

/** The reason phrases the server itself sends. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  411: "Length Required",
  413: "Content Too Large",
  414: "URI Too Long",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};
