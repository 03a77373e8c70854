// How a child process ended, said the same way by every supervisor that reaps one.

/** "exit code 3", "signal SIGKILL". */
export function describeExit(status: Deno.CommandStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
}
