// Errors a client causes are values that carry their HTTP status; the connection loop turns
// one into a response in a single place and closes the connection.

/** A protocol error caused by the client: its status and a short reason safe to send. */
export class HttpError extends Error {
  readonly status: number;
  /** Header lines the answer must carry besides the server's own ("Name: value\r\n" each). */
  readonly headerLines: string;

  constructor(status: number, reason: string, headerLines = "") {
    super(reason);
    this.name = "HttpError";
    this.status = status;
    this.headerLines = headerLines;
  }
}

/** An error in the application's use of the contract (bad status, header, body). */
export class AppError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AppError";
  }
}

/** Reason phrases (RFC 9110 §15): those the server sends and those apps commonly use. */
const STATUS_TEXT: Readonly<Record<number, string>> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** The reason phrase for a status, for a status line; "Unknown" when there is none. */
export function reasonPhrase(status: number): string {
  return STATUS_TEXT[status] ?? "Unknown";
}
