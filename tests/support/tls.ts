// A self-signed certificate for 127.0.0.1, made with openssl for a test run (TLS binds, nginx
// terminating TLS, PROXY headers before a handshake).

import assert from "node:assert/strict";

export interface TestCertificate {
  cert: string;
  key: string;
}

/** Whether openssl can be run here (tests that need a certificate are skipped without it). */
export function hasOpenssl(): boolean {
  try {
    return new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Writes cert.pem and key.pem into `dir`: a server certificate for 127.0.0.1, valid a day. */
export async function makeCertificate(dir: string): Promise<TestCertificate> {
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  const made = await new Deno.Command("openssl", {
    args: [
      ...["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert],
      ...["-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
      ...["-addext", "basicConstraints=critical,CA:FALSE"],
      ...["-addext", "extendedKeyUsage=serverAuth"],
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  assert.ok(made.success, "openssl made a certificate");
  return { cert, key };
}
